package bolt

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the metadata needed to read it back), not
// its timestamps: one device flush for an overwrite of allocated blocks.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
