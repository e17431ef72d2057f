package dicomio_test

import (
	"bytes"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

func TestDataSetOf(t *testing.T) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 16, Cols: 16})
	if err != nil {
		t.Fatal(err)
	}
	file := files[0].Data
	ds, err := dicomio.DataSetOf(file)
	if err != nil {
		t.Fatal(err)
	}
	// The data set starts at group 0008 and is the file's tail.
	if !bytes.HasSuffix(file, ds) || len(ds) == 0 || ds[0] != 0x08 || ds[1] != 0x00 {
		t.Fatalf("data set starts % x", ds[:4])
	}
	for name, b := range map[string][]byte{
		"no DICM":        file[4:],
		"truncated meta": file[:155], // inside the header of (0002,0001) OB
	} {
		if _, err := dicomio.DataSetOf(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
