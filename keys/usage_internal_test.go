package keys

import (
	"testing"
	"time"
)

// BenchmarkUsageCount is what counting adds to every authenticated request: a map update under
// a mutex, here from every core at once on one key (the worst case for the mutex).
func BenchmarkUsageCount(b *testing.B) {
	u := &usageRecorder{pending: map[usageBucket]*usageCount{}}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u.count("01a23bc4-c682-73c9-8e39-8e40cc3217bf", now)
		}
	})
}
