package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logBuffer holds the server's log lines and writes them in batches, at least every
// logFlushInterval and when the server stops: one write system call per batch rather than one
// per request, which was a tenth of a request's cost. A crash loses at most that interval.
type logBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

const logFlushInterval = 100 * time.Millisecond

func newLogBuffer(out io.Writer) *logBuffer {
	l := &logBuffer{w: bufio.NewWriterSize(out, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(logFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes what is held now.
func (l *logBuffer) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close stops the timer and writes what is left.
func (l *logBuffer) Close() error {
	close(l.stop)
	<-l.done
	return l.Flush()
}
