package node

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskSpace reports the bytes available to this (unprivileged) process and
// the total size of the file system that holds dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return st.Bavail * bs, st.Blocks * bs, nil
}
