package netsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/node"
)

// Sim is one simulated network: a mocknet and the real nodes on it. Its
// nodes are driven through their local API (api.Client), as the CLI
// drives a served node.
type Sim struct {
	// OnDisk puts each node's archive in its home, as `pacsnet serve`
	// does (Badger with the blob log of block ciphertext, synced
	// commits), instead of Badger's in-memory mode. Fetches of real-sized
	// images need it: in-memory Badger has no value log, so it refuses
	// values over its 64 KiB value threshold (a block is up to 1 MiB) and
	// transactions over 15% of its memtable (a fetch commits 32 MiB
	// batches). Set it before adding nodes.
	OnDisk bool
	// Seed fixes each link's jitter and loss draws (see LinkSpec),
	// together with the indexes of the link's nodes.
	Seed uint64

	dir string
	log *slog.Logger
	mn  mocknet.Mocknet
	hc  *http.Client

	mu    sync.Mutex
	nodes []*Node
	links map[[2]peer.ID]LinkSpec // the links up now, by their peers in order

	imu      sync.RWMutex // read on every write of an impaired host's streams
	impaired map[[2]peer.ID]*impairment

	closeOnce sync.Once
	closeErr  error
}

// Node is one facility of a simulation: a real node (node.Open) on a
// mocknet peer, with its archive in memory or in its home.
type Node struct {
	Name string
	Home string
	ID   peer.ID
	// API is the node's local API, with its admin token. Restart
	// replaces it (the API listens on a new port).
	API *api.Client

	n    *node.Node
	host host.Host // mocknet's, wrapped (impairedHost)
	idx  int       // the order it was added in
	cfg  node.Config
	down map[*Node]LinkSpec // while stopped: the links Restart restores
}

// LinkSpec is one simulated link: its round-trip time and its bandwidth
// (bytes per second, shared by both directions, as mocknet models it),
// and what mocknet lacks: jitter and loss (see impair.go).
type LinkSpec struct {
	RTT       time.Duration `json:"rtt"`
	Bandwidth int64         `json:"bandwidth"` // bytes per second
	// Jitter holds each write on the link back by a delay drawn
	// uniformly from [0, Jitter].
	Jitter time.Duration `json:"jitter,omitempty"`
	// Loss is the fraction of 1,460-byte segments lost: a write that
	// loses one is held back one retransmission timeout (the larger of
	// 200 ms and the RTT), as a reliable stream shows loss.
	Loss float64 `json:"loss,omitempty"`
}

// Mbps is the link's bandwidth in megabits per second.
func (l LinkSpec) Mbps() float64 { return float64(l.Bandwidth) * 8 / 1e6 }

// NewSim starts an empty simulation whose nodes keep their homes under
// dir (which must exist). log receives every node's log, tagged with the
// facility's name; nil discards it.
func NewSim(dir string, log *slog.Logger) *Sim {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sim{
		dir: dir,
		log: log,
		mn:  mocknet.New(),
		// Many nodes, each with its own loopback API: keep a few idle
		// connections to each.
		hc: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
	}
}

// AddNode initialises a home for the facility name under the
// simulation's directory and opens a node on it with node.Open, the
// constructor `pacsnet serve` uses, swapping only its libp2p host (a
// mocknet peer at ip with the node's own key) and, unless OnDisk, its
// archive (Badger in memory). The DICOM listener is off; the local API
// listens on a free loopback port.
func (s *Sim) AddNode(name, ip string) (*Node, error) {
	s.mu.Lock()
	home := filepath.Join(s.dir, fmt.Sprintf("node-%04d", len(s.nodes)))
	s.mu.Unlock()
	if _, err := node.Init(home, node.InitOptions{Name: name}); err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	cfg, err := node.LoadConfig(home)
	if err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DICOM.Disabled = true
	key, err := node.HostKey(home)
	if err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	addr, err := multiaddr.NewMultiaddr("/ip4/" + ip + "/tcp/4801")
	if err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	mh, err := s.mn.AddPeer(key, addr)
	if err != nil {
		return nil, fmt.Errorf("add node %s: mocknet peer: %w", name, err)
	}
	h := impairedHost{Host: mh, sim: s}
	n, err := node.Open(home, cfg, node.Options{Logger: s.log, Host: h, InMemory: !s.OnDisk})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		h.Close()
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	tok, err := node.ReadAPIToken(home)
	if err != nil {
		n.Close()
		h.Close()
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	nd := &Node{Name: name, Home: home, ID: n.ID(), API: api.NewClient("http://"+n.HTTPAddr(), tok, s.hc), n: n, host: h, cfg: cfg}
	s.mu.Lock()
	nd.idx = len(s.nodes)
	s.nodes = append(s.nodes, nd)
	s.mu.Unlock()
	return nd, nil
}

// AddNodes adds count nodes named prefix 01, prefix 02, … on addresses
// 10.x.y.z numbered from the simulation's first free one.
func (s *Sim) AddNodes(prefix string, count int) ([]*Node, error) {
	out := make([]*Node, 0, count)
	for i := range count {
		s.mu.Lock()
		k := len(s.nodes) + 1
		s.mu.Unlock()
		nd, err := s.AddNode(fmt.Sprintf("%s %02d", prefix, i+1), fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255))
		if err != nil {
			return out, err
		}
		out = append(out, nd)
	}
	return out, nil
}

// Link joins two nodes' mocknet peers with a link of the given spec (or
// sets the spec of the link they have again). Mocknet delays every write
// by the link's one-way latency, half the round trip, plus what its rate
// limiter says. The limiter lets an idle link save up to a second's worth
// of bytes and send them at once; setting the spec empties that
// allowance, so scenarios call Link again just before what they measure.
// The spec's Jitter and Loss apply to the nodes' protocol streams on the
// link (impair.go).
func (s *Sim) Link(a, b *Node, spec LinkSpec) error {
	opts := mocknet.LinkOptions{Bandwidth: float64(spec.Bandwidth)} // the latency is the streams' (impair.go)
	s.setImpairment(a, b, spec)
	if ls := s.mn.LinksBetweenPeers(a.ID, b.ID); len(ls) > 0 {
		for _, l := range ls {
			l.SetOptions(opts)
		}
		s.mu.Lock()
		if s.links == nil {
			s.links = map[[2]peer.ID]LinkSpec{}
		}
		s.links[pairOf(a, b)] = spec
		s.mu.Unlock()
		return nil
	}
	l, err := s.mn.LinkPeers(a.ID, b.ID)
	if err != nil {
		return fmt.Errorf("link %s and %s: %w", a.Name, b.Name, err)
	}
	l.SetOptions(opts)
	s.mu.Lock()
	if s.links == nil {
		s.links = map[[2]peer.ID]LinkSpec{}
	}
	s.links[pairOf(a, b)] = spec
	s.mu.Unlock()
	return nil
}

func pairOf(a, b *Node) [2]peer.ID {
	if a.ID < b.ID {
		return [2]peer.ID{a.ID, b.ID}
	}
	return [2]peer.ID{b.ID, a.ID}
}

// Unlink cuts the link between two nodes (a link failure): open
// connections are closed and new dials fail until Link joins them again.
func (s *Sim) Unlink(a, b *Node) error {
	// Unlinked first, so that nothing dials again in between.
	if err := s.mn.UnlinkPeers(a.ID, b.ID); err != nil {
		return fmt.Errorf("unlink %s and %s: %w", a.Name, b.Name, err)
	}
	if err := s.mn.DisconnectPeers(a.ID, b.ID); err != nil {
		return fmt.Errorf("unlink %s and %s: %w", a.Name, b.Name, err)
	}
	s.mu.Lock()
	delete(s.links, pairOf(a, b))
	s.mu.Unlock()
	return nil
}

// Stop closes nd's node and cuts its links, as when a facility's machine
// goes down: partners' dials fail until Restart. Its home stays.
func (s *Sim) Stop(nd *Node) error {
	if nd.down != nil {
		return fmt.Errorf("stop %s: already stopped", nd.Name)
	}
	nd.down = map[*Node]LinkSpec{}
	s.mu.Lock()
	for _, o := range s.nodes {
		if spec, ok := s.links[pairOf(nd, o)]; ok && o != nd {
			nd.down[o] = spec
		}
	}
	s.mu.Unlock()
	for o := range nd.down {
		if err := s.Unlink(nd, o); err != nil {
			return err
		}
	}
	if err := nd.n.Close(); err != nil {
		return fmt.Errorf("stop %s: %w", nd.Name, err)
	}
	return nil
}

// Restart opens a stopped node's home again with node.Open, on the same
// mocknet peer, and restores its links. Only an on-disk archive (OnDisk)
// survives: an in-memory one would come back empty, partners and all.
func (s *Sim) Restart(nd *Node) error {
	if nd.down == nil {
		return fmt.Errorf("restart %s: not stopped", nd.Name)
	}
	if !s.OnDisk {
		return fmt.Errorf("restart %s: the archive is in memory and was lost; set Sim.OnDisk", nd.Name)
	}
	n, err := node.Open(nd.Home, nd.cfg, node.Options{Logger: s.log, Host: nd.host})
	if err != nil {
		return fmt.Errorf("restart %s: %w", nd.Name, err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		return fmt.Errorf("restart %s: %w", nd.Name, err)
	}
	tok, err := node.ReadAPIToken(nd.Home)
	if err != nil {
		n.Close()
		return fmt.Errorf("restart %s: %w", nd.Name, err)
	}
	nd.n, nd.API = n, api.NewClient("http://"+n.HTTPAddr(), tok, s.hc)
	for o, spec := range nd.down {
		if err := s.Link(nd, o, spec); err != nil {
			return err
		}
	}
	nd.down = nil
	return nil
}

// Partner makes a and b partners exactly as two admins do with the CLI
// (`pacsnet invite` at one, `pacsnet peer add` at the other, both ways),
// through their local APIs.
func (s *Sim) Partner(ctx context.Context, a, b *Node) error {
	for _, p := range [][2]*Node{{a, b}, {b, a}} {
		inv, err := p[1].API.Invite(ctx)
		if err != nil {
			return fmt.Errorf("invite of %s: %w", p[1].Name, err)
		}
		if _, err := p[0].API.AddPartner(ctx, inv.Invite); err != nil {
			return fmt.Errorf("%s adds %s: %w", p[0].Name, p[1].Name, err)
		}
	}
	return nil
}

// Nodes returns the simulation's nodes in the order they were added.
func (s *Sim) Nodes() []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Node(nil), s.nodes...)
}

// Close closes every node, then their hosts and the mocknet. Later calls
// return what the first returned.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Sim) close() error {
	s.mu.Lock()
	nodes := s.nodes
	s.nodes = nil
	s.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	// A few at a time, handing memory back now and then: closing a node
	// clears its Badger block cache's counters, touching pages that were
	// allocated but never used, so closing a thousand nodes at once
	// doubled the resident set (4.0 GiB at the end of a 1,000-node run
	// whose nodes held 2.0 GiB).
	sem := make(chan struct{}, closeParallel)
	for i, nd := range nodes {
		if nd.down != nil {
			continue // stopped: closed already
		}
		if i > 0 && i%closeBatch == 0 {
			wg.Wait()
			debug.FreeOSMemory()
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := nd.n.Close(); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("close %s: %w", nd.Name, err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := s.mn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close mocknet: %w", err))
	}
	s.hc.CloseIdleConnections()
	return errors.Join(errs...)
}

// Close closes closeParallel nodes at a time, and hands memory back to
// the system after every closeBatch.
const closeParallel, closeBatch = 8, 128

// ImportCT generates a synthetic CT study (dicomio/synth) and imports it
// into nd through its API, as `pacsnet import` does. It returns the
// study's UID and its instances' bytes.
func ImportCT(ctx context.Context, nd *Node, o synth.CTOptions) (study string, bytesIn int64, err error) {
	study, files, err := synth.CT(o)
	if err != nil {
		return "", 0, fmt.Errorf("make study: %w", err)
	}
	for _, f := range files {
		r, err := nd.API.ImportFile(ctx, bytes.NewReader(f.Data), int64(len(f.Data)))
		if err != nil {
			return "", 0, fmt.Errorf("import into %s: %w", nd.Name, err)
		}
		if r.Outcome != api.OutcomeStored {
			return "", 0, fmt.Errorf("import into %s: %s: %s", nd.Name, r.Outcome, r.Error)
		}
		bytesIn += int64(len(f.Data))
	}
	return study, bytesIn, nil
}

// waitShared polls nd's list of shared studies until the study from
// issuer is there, available; it returns what the list says of it.
func waitShared(ctx context.Context, nd *Node, issuer peer.ID, study string, every time.Duration) (api.SharedStudy, error) {
	for {
		list, err := nd.API.Shared(ctx)
		if err != nil {
			return api.SharedStudy{}, err
		}
		for _, s := range list {
			if s.StudyUID == study && s.Issuer.PeerID == issuer.String() && s.State == api.SharedAvailable {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return api.SharedStudy{}, fmt.Errorf("manifest of %s at %s: %w", study, nd.Name, ctx.Err())
		case <-time.After(every):
		}
	}
}

// fetchTimes is what polling a fetch saw.
type fetchTimes struct {
	job   api.FetchJob  // the final status
	first time.Duration // from the start to the first instance committed
	total time.Duration // from the start to done, as the client saw it
}

// fetch starts fetching study at nd (`pacsnet fetch`) and polls its
// status every few milliseconds until it ends.
func fetch(ctx context.Context, nd *Node, study string) (fetchTimes, error) {
	start := time.Now()
	job, err := nd.API.StartFetch(ctx, api.FetchRequest{StudyUID: study})
	if err != nil {
		return fetchTimes{}, fmt.Errorf("fetch at %s: %w", nd.Name, err)
	}
	return pollFetch(ctx, nd, job, start)
}

// pollFetch polls a fetch started at start until it ends.
func pollFetch(ctx context.Context, nd *Node, job api.FetchJob, start time.Time) (fetchTimes, error) {
	var ft fetchTimes
	var err error
	for {
		if job.InstancesDone > 0 && ft.first == 0 {
			ft.first = time.Since(start)
		}
		switch job.State {
		case api.FetchDone:
			ft.total = time.Since(start)
			ft.job = job
			return ft, nil
		case api.FetchFailed:
			ft.job = job
			return ft, fmt.Errorf("fetch at %s failed: %s", nd.Name, job.Error)
		}
		select {
		case <-ctx.Done():
			return ft, fmt.Errorf("fetch at %s: %w", nd.Name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
		if job, err = nd.API.Fetch(ctx, job.FetchID); err != nil {
			return ft, fmt.Errorf("fetch status at %s: %w", nd.Name, err)
		}
	}
}

// verify checks that nd holds every instance of study that holder holds,
// with the same SHA-256, and reads each one back: the node decrypts it
// and checks it against that digest, and so does verify, of the bytes it
// receives.
func verify(ctx context.Context, nd, holder *Node, study string) (int, error) {
	want, err := holder.API.Instances(ctx, study)
	if err != nil {
		return 0, fmt.Errorf("instances at %s: %w", holder.Name, err)
	}
	got, err := nd.API.Instances(ctx, study)
	if err != nil {
		return 0, fmt.Errorf("instances at %s: %w", nd.Name, err)
	}
	if len(got) != len(want) || len(want) == 0 {
		return 0, fmt.Errorf("%s holds %d instances of %s, %s %d", nd.Name, len(got), study, holder.Name, len(want))
	}
	digest := make(map[string]string, len(want))
	for _, in := range want {
		digest[in.SOPInstanceUID] = in.SHA256
	}
	for _, in := range got {
		if digest[in.SOPInstanceUID] != in.SHA256 {
			return 0, fmt.Errorf("%s: instance %s differs from %s's", nd.Name, in.SOPInstanceUID, holder.Name)
		}
		rc, _, err := nd.API.InstanceData(ctx, study, in.SOPInstanceUID)
		if err != nil {
			return 0, fmt.Errorf("read instance %s at %s: %w", in.SOPInstanceUID, nd.Name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("read instance %s at %s: %w", in.SOPInstanceUID, nd.Name, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != in.SHA256 {
			return 0, fmt.Errorf("%s: instance %s does not match its SHA-256", nd.Name, in.SOPInstanceUID)
		}
	}
	return len(got), nil
}

// mkdirTemp makes a fresh directory for one scenario's homes under dir.
// openSim makes a scenario's Sim in a temporary directory under cfg.Dir
// (named after the scenario), its archives on disk when onDisk; done
// closes the nodes and removes the directory.
func openSim(cfg Config, scenario string, onDisk bool) (sim *Sim, done func(), err error) {
	dir, err := mkdirTemp(cfg.Dir, "netsim-"+scenario+"-")
	if err != nil {
		return nil, nil, err
	}
	sim = NewSim(dir, cfg.Logger)
	sim.OnDisk = onDisk
	return sim, func() { sim.Close(); os.RemoveAll(dir) }, nil
}

func mkdirTemp(dir, pattern string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	return os.MkdirTemp(dir, pattern)
}
