package ctcsv

import "io"

var io_ReadFull = io.ReadFull
