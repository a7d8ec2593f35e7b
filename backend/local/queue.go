package local

import (
	"sync"
	"time"
)

// queue is a de-duplicating work queue of cluster names: a name added
// several times while waiting is processed once, and a name is never
// handed to two reconcilers at once (an add while it is processed is
// replayed when it is done).
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []string
	queued     map[string]bool
	processing map[string]bool
	dirty      map[string]bool
	failures   map[string]int
	closed     bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, processing: map[string]bool{}, dirty: map[string]bool{}, failures: map[string]int{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed || q.queued[name]:
	case q.processing[name]:
		q.dirty[name] = true
	default:
		q.queued[name] = true
		q.items = append(q.items, name)
		q.cond.Signal()
	}
}

// addAfter adds name after a delay.
func (q *queue) addAfter(name string, d time.Duration) {
	time.AfterFunc(d, func() { q.add(name) })
}

// backoff returns the delay before retrying name after a failed step:
// base doubling up to max, per consecutive failure.
func (q *queue) backoff(name string, base, maxDelay time.Duration) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.failures[name]
	q.failures[name] = n + 1
	d := base << min(n, 30)
	if d > maxDelay || d <= 0 {
		d = maxDelay
	}
	return d
}

func (q *queue) forget(name string) {
	q.mu.Lock()
	delete(q.failures, name)
	q.mu.Unlock()
}

// get blocks for the next name; ok is false once the queue is closed.
func (q *queue) get() (name string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	name, q.items = q.items[0], q.items[1:]
	delete(q.queued, name)
	q.processing[name] = true
	return name, true
}

func (q *queue) done(name string) {
	q.mu.Lock()
	delete(q.processing, name)
	again := q.dirty[name]
	delete(q.dirty, name)
	q.mu.Unlock()
	if again {
		q.add(name)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
