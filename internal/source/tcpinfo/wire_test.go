package tcpinfo

import (
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/testenv"
)

// link joins namespace srv (address .1) to cli (address .2) with delay and loss on the server's
// egress: a veth pair with `tc qdisc … netem` when the kernel has sch_netem, else a pair of TAP
// devices joined by a userspace wire in this process (this test machine's kernel has no netem).
// It returns how the link was made.
func link(t *testing.T, srv, cli string, delay time.Duration, lossPercent int) string {
	t.Helper()
	ip := testenv.Command(t, "ip")
	tc := testenv.Command(t, "tc")
	mode := "netem"
	if out, err := exec.Command(ip, "link", "add", "vS", "netns", srv, "type", "veth", "peer", "name", "vC", "netns", cli).CombinedOutput(); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	err := exec.Command(tc, "-n", srv, "qdisc", "add", "dev", "vS", "root", "netem",
		"delay", delay.String(), "loss", strconv.Itoa(lossPercent)+"%").Run()
	sdev, cdev := "vS", "vC"
	if err != nil {
		mode = "userspace wire (no sch_netem in this kernel)"
		run(t, ip, "-n", srv, "link", "del", "vS")
		sdev, cdev = "tS", "tC"
		ts := openTAP(t, srv, sdev)
		tcl := openTAP(t, cli, cdev)
		w := &wire{rng: rand.New(rand.NewSource(1))}
		w.wg.Add(2)
		go w.pump(ts, tcl, delay, float64(lossPercent)/100)
		go w.pump(tcl, ts, 0, 0)
		t.Cleanup(func() {
			ts.Close()
			tcl.Close()
			w.wg.Wait()
		})
	}
	for _, x := range []struct{ ns, dev, last string }{{srv, sdev, "1"}, {cli, cdev, "2"}} {
		run(t, ip, "-n", x.ns, "addr", "add", "10.77.0."+x.last+"/24", "dev", x.dev)
		run(t, ip, "-n", x.ns, "addr", "add", "fd77::"+x.last+"/64", "dev", x.dev, "nodad")
		run(t, ip, "-n", x.ns, "link", "set", x.dev, "up")
	}
	return mode
}

// openTAP creates TAP device name in namespace ns; it disappears when the file is closed.
func openTAP(t *testing.T, ns, name string) *os.File {
	t.Helper()
	var f *os.File
	inNetNS(t, ns, func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Errorf("open /dev/net/tun: %v", err)
			return
		}
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			t.Errorf("TUNSETIFF %s: %v", name, err)
			return
		}
		f = os.NewFile(uintptr(fd), name)
	})
	if f == nil {
		t.FailNow()
	}
	return f
}

// wire forwards Ethernet frames between two TAP devices, delaying and dropping (with a fixed
// seed) in one direction: netem in userspace.
type wire struct {
	mu  sync.Mutex
	rng *rand.Rand
	wg  sync.WaitGroup
}

type frame struct {
	due  time.Time
	data []byte
}

func (w *wire) pump(from, to *os.File, delay time.Duration, loss float64) {
	defer w.wg.Done()
	q := make(chan frame, 8192)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range q {
			if d := time.Until(f.due); d > 0 {
				time.Sleep(d)
			}
			to.Write(f.data)
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := from.Read(buf)
		if err != nil {
			close(q)
			<-done
			return
		}
		if loss > 0 {
			w.mu.Lock()
			drop := w.rng.Float64() < loss
			w.mu.Unlock()
			if drop {
				continue
			}
		}
		q <- frame{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
	}
}
