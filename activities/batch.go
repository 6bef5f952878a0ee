package activities

import "sync"

// batcher sends what several activities of this worker have to send at the same moment in
// batches, one batch under way per key: what comes while a batch is under way waits and goes
// with the others in the next (the way a database commits a group of transactions), so a lone
// item goes at once and a burst costs a few sends. Instances' reports to one group (one signal
// each) and their state records (one MySQL commit each) come in bursts of a hundred in a
// scale-out.
type batcher[T any] struct {
	mu     sync.Mutex
	queues map[string]*batchQueue[T]
}

// maxBatch bounds what one send carries: a signal of 200 reports is some 60 KB, a
// transaction of 200 instance records a fraction of a second.
const maxBatch = 200

type batchQueue[T any] struct {
	// next is the batch the next send carries; nil when nothing waits.
	next *batch[T]
}

type batch[T any] struct {
	items []T
	// done is closed once the batch was sent; err is then the send's outcome.
	done chan struct{}
	err  error
}

// join adds an item to the next batch for key and returns that batch, whose done channel
// closes when it was sent. The first item for a key with no batch under way starts a sender,
// which sends batches with send until none is left; a full batch is sent on its own.
func (b *batcher[T]) join(key string, item T, send func([]T) error) *batch[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queues == nil {
		b.queues = map[string]*batchQueue[T]{}
	}
	q, sending := b.queues[key]
	if !sending {
		q = &batchQueue[T]{}
		b.queues[key] = q
	}
	if q.next != nil && len(q.next.items) >= maxBatch {
		go q.next.send(send)
		q.next = nil
	}
	if q.next == nil {
		q.next = &batch[T]{done: make(chan struct{})}
	}
	bt := q.next
	bt.items = append(bt.items, item)
	if !sending {
		go b.sendAll(key, q, send)
	}
	return bt
}

// sendAll sends the key's batches one after another until none waits.
func (b *batcher[T]) sendAll(key string, q *batchQueue[T], send func([]T) error) {
	for {
		b.mu.Lock()
		bt := q.next
		q.next = nil
		if bt == nil {
			delete(b.queues, key)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		bt.send(send)
	}
}

func (bt *batch[T]) send(send func([]T) error) {
	bt.err = send(bt.items)
	close(bt.done)
}
