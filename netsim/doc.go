// Package netsim runs many real pacsnet nodes in one process on a
// simulated network, in scenarios that report what a facility would see:
// how long a fetch takes against what its link allows, how soon a grant
// reaches its partners, what a node costs.
//
// # What it swaps, what it never reimplements
//
// Every node is opened with [node.Open], the constructor `pacsnet serve`
// uses, on a home made by node.Init in a directory the caller gives. The
// simulation swaps what node.Options offers and nothing else: the libp2p
// host is a go-libp2p mocknet peer carrying the node's own key
// ([node.HostKey]; wrapped, see Latency, jitter and loss), and the archive is Badger's in-memory mode (or, with
// [Sim.OnDisk], the node's real on-disk archive in its home: fetches of
// real-sized images need it, see Sim.OnDisk). The clock is the real one:
// mocknet's latency is real time. The nodes are driven as the CLI drives
// a served node, through their local HTTP API ([api.Client]): invites
// both ways to partner, imports of synthetic CTs (dicomio/synth), grants,
// the inbox, fetches and their status. No protocol logic lives here.
//
// Links are mocknet links between the pairs a scenario partners, with a
// round-trip time (mocknet delays each write by half of it) and a
// bandwidth (one rate limiter per link, both directions). [Sim.Unlink]
// cuts a link (link failure); [Sim.Link] joins it again;
// [Sim.Partition] cuts every link between groups of nodes and
// [Cut.Heal] joins them again. [Sim.Stop] closes a node and cuts its
// links (its machine goes down); [Sim.Restart] opens its home again
// with node.Open on the same peer (on-disk archives only) and restores
// them. The tests use all of them: a fetch survives its holder's
// restart and a cut link, and a grant issued across a cut link arrives
// once it is joined.
//
// # Latency, jitter and loss
//
// mocknet delays a write by the link's latency and delivers a stream's
// writes one at a time, each only once the one before it arrived: a
// stream moved one write per one-way latency, which no network does
// (a fetch on a 1 Gbit/s, 50 ms link crawled at 20–50 MB/s). Nor has it
// jitter or loss, and a link's options cannot change per write
// (SetOptions empties its rate limiter). So mocknet's links carry only
// the bandwidth, and each node is given mocknet's host wrapped
// (impair.go): the streams its protocols open (NewStream) and accept
// (SetStreamHandler) queue every write at once, up to a TCP-like send
// buffer of 6 MiB per stream, and hand it to mocknet in order when it
// is due: after the link's one-way latency, plus a delay drawn
// uniformly from [0, LinkSpec.Jitter], plus one retransmission timeout
// (the larger of 200 ms, Linux's smallest, and the RTT) when one of the
// write's 1,460-byte segments is lost (LinkSpec.Loss). That is how loss
// shows on a reliable stream: not as missing bytes but as a stall of
// everything behind them on that stream. The draws come from a PCG per
// link seeded by Sim.Seed and the link's nodes, so a seed fixes their
// sequence (which write gets which draw depends on scheduling). What it
// does not model: fast retransmit (a loss costs an RTO, not one RTT: a
// pessimistic stall), the congestion window's halving after a loss (an
// optimistic throughput) and TCP's slow start (the send buffer is
// there from the first byte; the fetcher's own window still grows from
// 4 MiB). Only the node's protocols see the latency, not libp2p's
// identify.
//
// # Scenarios
//
// [Run] runs one by name; each returns a [Report] (JSON, and a table):
//
//   - regional ([Regional]): hospitals on WAN links (10–80 ms, 100 Mbit/s
//     to 1 Gbit/s); some import a CT and grant it to a specialist's
//     hospital, which fetches it. Per fetch: size, the link, time to the
//     first instance committed, to completion, the ideal time (size over
//     bandwidth plus a round trip) and the ratio.
//   - multisource ([Multisource]): one study held by 1, 2, 4, 8
//     facilities that serve it as secondary holders, fetched by another
//     partnered with all of them; the fetch takes blocks from every holder
//     at once, and the report gives the sources used and the speed-up
//     over one holder.
//   - fanout ([Fanout]): one facility grants a patient to many partners;
//     manifest delivery latency p50/p99, heap, RSS and goroutines per node.
//   - scale ([Scale]): fanout at 50, 100, 200, 500 and 1,000 nodes
//     (Config.Sweep): heap, RSS, goroutines and CPU per node as the count
//     grows, and the largest count that ran (`pacsnet netsim` runs each
//     point in a process of its own).
//   - partition ([Partition]): an origin partnered with every other node
//     cuts half of them off ([Sim.Partition]) and, while they are cut
//     off, issues grants, revocations, grants again, patient grants and
//     an import its patient grants cover; the links heal ([Cut.Heal]).
//     Every partner must then hold what the origin intended (computed
//     from the plan's ops alone: a revoked grant stays revoked, a grant
//     issued again is live), and its audit log must list the manifests
//     the origin's lists as sent, in order, none lost or applied twice.
//     It reports each manifest's delivery after the heal.
//   - churn ([Churn]): regional with each holder stopped a third of the
//     way into its fetch and restarted a second later; every fetch must
//     complete, verified.
//
// A seed fixes every choice (math/rand/v2, PCG): the plan functions
// ([PlanRegional], [PlanMultisource], [PlanFanout], [PlanPartition];
// churn draws as regional does) compute the topology,
// links and sizes before any node starts, and the same seed gives the
// same plan; timings vary.
//
// # Reports
//
// A [Report] prints its tables (WriteTable) and marshals to JSON;
// [WriteMarkdown] writes it as Markdown with its [Chart]s saved as PNG
// files beside it (gonum.org/v1/plot): every report with charts
// implements [Charter]. plot.go is the small plotting API a scenario
// uses: a Chart of [Series] (points, lines, or both; [CDF] and
// [Diagonal] build the common ones). regional plots throughput against
// the link's bandwidth and time over ideal against RTT; fanout and
// partition the delivery latency's CDF; scale memory and setup cost per
// node against the node count; churn time against ideal plus downtime.
//
// # Time
//
// The nodes run on the real clock. node.Options takes a clock
// (node/clock: grant expiry and not-before, outbox backoff, fetch
// retries, the re-issue of a grown study's manifests, rate limiters,
// value-log GC ask it), and a node test (TestSimulatedExchange) moves a
// fake one to expire a grant. netsim does not, because what it measures
// runs on real time and cannot be given another clock: mocknet's
// latency and rate limiting (mock_stream.go, ratelimiter.go) use
// time.Now and time timers; libp2p's host and identify, Badger's
// compactors, the nodes' HTTP API and the exchange's context timeouts
// (an outbox push has 30 s) likewise. A simulated clock for the nodes
// alone would make their timers (the outbox's backoff, which decides
// partition's delivery after healing; the fetcher's retries, which
// decide churn's) run at another rate than the network they wait on,
// and the figures would mean neither. Running everything on simulated
// time would mean a network simulator of our own under libp2p (as
// x/simlibp2p does for QUIC) rather than mocknet: not done. A scenario
// that needs days to pass (grant expiry) can still jump a fake clock as
// the node test does; none here needs it.
//
// Stop is a clean Close, not a crash mid-write.
//
// # Imports
//
// netsim imports node, api and dicomio/synth of pacsnet, never consent,
// exchange, crypto, transfer or the wire formats; only cmd/pacsnet
// (`pacsnet netsim`) imports netsim (internal/deptest checks both).
package netsim
