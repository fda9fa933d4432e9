package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/internal/mountinfo"
)

// twoWriters samples, every interval, on every cluster node, whether the
// instance's VIP is on one of its interfaces and whether its storage
// partition is mounted in its mount namespace, and counts the samples in
// which two nodes had either at once: what fencing and quorum must never
// let happen (one instance's partitions written by two nodes).
type twoWriters struct {
	vip, mount string
	nodes      map[string]nodeNS // by node name
	interval   time.Duration

	mu             sync.Mutex
	samples, fired int
	firstFire      string
	stop, done     chan struct{}
}

type nodeNS struct {
	netns string // ip -n NAME
	dir   string
}

// newTwoWriters reads the lab's state for the namespaces of nodes.
func (b *bench) newTwoWriters(nodes []string, vip, mount string) (*twoWriters, error) {
	out, err := b.mfRun("lab", "status", "-json", b.lab)
	if err != nil {
		return nil, err
	}
	var st struct {
		Dir   string `json:"dir"`
		Nodes []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	w := &twoWriters{vip: vip, mount: mount, nodes: map[string]nodeNS{}, interval: 100 * time.Millisecond,
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range st.Nodes {
		for _, want := range nodes {
			if n.Name == want {
				w.nodes[n.Name] = nodeNS{netns: n.Namespace, dir: filepath.Join(st.Dir, "nodes", n.Name)}
			}
		}
	}
	if len(w.nodes) != len(nodes) {
		return nil, fmt.Errorf("the lab has %d of the nodes %v", len(w.nodes), nodes)
	}
	return w, nil
}

func (w *twoWriters) start() {
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			w.sample()
		}
	}()
}

func (w *twoWriters) end() (samples, fired int, first string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, w.fired, w.firstFire
}

func (w *twoWriters) sample() {
	var withVIP, withMount []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	for name, ns := range w.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vip, mnt := w.has(ns)
			mu.Lock()
			defer mu.Unlock()
			if vip {
				withVIP = append(withVIP, name)
			}
			if mnt {
				withMount = append(withMount, name)
			}
		}()
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	if len(withVIP) > 1 || len(withMount) > 1 {
		w.fired++
		if w.firstFire == "" {
			w.firstFire = fmt.Sprintf("%s: VIP on %v, %s mounted on %v", time.Now().Format("15:04:05.000"), withVIP, w.mount, withMount)
		}
	}
}

// has reports whether node ns has the VIP and the mount now. A node that
// is off has neither.
func (w *twoWriters) has(ns nodeNS) (vip, mnt bool) {
	// Instrumentation, not the cluster's load: at a low priority.
	out, err := exec.Command("nice", "-n", "10", "ip", "-n", ns.netns, "-o", "-4", "addr", "show").Output()
	if err == nil && strings.Contains(string(out), " "+w.vip+"/") {
		vip = true
	}
	pid, err := os.ReadFile(filepath.Join(ns.dir, "init.pid"))
	if err != nil {
		return vip, false
	}
	es, err := mountinfo.Read("/proc/" + strings.TrimSpace(string(pid)) + "/mountinfo")
	if err != nil {
		return vip, false
	}
	for _, e := range es {
		if e.Point == w.mount {
			return vip, true
		}
	}
	return vip, false
}
