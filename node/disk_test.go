package node

import "testing"

func TestDiskSpace(t *testing.T) {
	free, total, err := diskSpace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || free > total {
		t.Fatalf("free %d of total %d", free, total)
	}
	if _, _, err := diskSpace("/does/not/exist"); err == nil {
		t.Fatal("no error for a missing folder")
	}
}
