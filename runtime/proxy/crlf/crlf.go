package crlf

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrTooLong is a line longer than the bound; the rest of it cannot be
// told from the next line, so the session ends.
var ErrTooLong = errors.New("line too long")

// ReadLine reads one line of at most max bytes, without its CRLF (a bare
// LF is accepted). A stream that ends inside a line is io.ErrUnexpectedEOF.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, ErrTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		if len(line) > max {
			return nil, ErrTooLong
		}
		return line, nil
	}
}
