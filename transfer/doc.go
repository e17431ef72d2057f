// Package transfer is pacsnet's block transfer engine: it fetches a
// study's missing blocks from every holder at once, at the rate of the
// links, in bounded memory, and hands each block to the caller only once
// it verified.
//
// The engine knows nothing of libp2p, the node, consent or DICOM. A
// [Source] is one holder behind a two-method interface (an ID, and Fetch
// of a batch of blocks streamed back in any order); a [Sink] takes the
// verified blocks; [Plan.Verify] is the caller's check of a block against
// its key; a [Clock] gives the time, so tests and the network simulator
// control it. [Fetch] runs one transfer and returns a [Result]; progress
// comes through [Options.Progress].
//
// Blocks are keyed by [cid.Cid], as the manifest and the block protocol
// name them: the engine's plan is the manifest's list as it is, with no
// second key type to convert to and from. go-cid is a small value type
// with no network behind it.
//
// # Windows from the measured bandwidth-delay product
//
// Each source has a window: the bytes it may have requested and not yet
// sent. The engine keeps it full with several requests at once (each a
// quarter of the window, at least one block, at most
// [Options.MaxRequestBytes], and at most an equal share among the active
// sources of the blocks still queued, so that a plan smaller than the
// windows is spread over every source), so the source streams without
// waiting for the next request. The window starts at [Options.InitialWindow] (256
// KiB) and is twice the source's bandwidth-delay product as measured:
// a smoothed delivery rate (the bytes the source delivered since a
// request was sent, over the time since) times a smoothed round trip
// (from a request to its first block, less the time the bytes queued
// ahead of it took). While the window is what limits the source, its
// rate is window/RTT and the window doubles about every round trip (a
// startup gain of 3 until the rate stops climbing makes up for samples
// trailing by a round trip); once the link limits it, the window settles
// at twice the link's product, capped by [Options.MaxWindow]. A 50 ms
// round trip thus does not throttle a 1 Gbit/s link: the window reaches
// its 12.5 MB within some six round trips.
//
// # Back-pressure
//
// All sources together may hold at most [Options.MaxInFlight] bytes (32
// MiB): bytes requested and not yet received, plus bytes received and
// verified that the sink has not taken yet. A request is sent only when
// its blocks fit, so memory is bounded whatever the study's size, and a
// slow sink (a synced batch write) slows the requests rather than filling
// memory. A single block larger than the budget is still fetched, alone.
//
// # Many sources
//
// Every source works at once, taking requests from one shared queue of
// blocks, so a faster source, whose window empties sooner and grows
// larger, takes more (work stealing). When the queue is empty, an idle
// source asks again for blocks that slower sources still owe (endgame),
// at most three copies of a block, and the first verified copy wins; a
// request whose blocks all arrived through others is cancelled.
//
// Sources may also come while the transfer runs ([Options.Later]): a node
// asks the original holder for the study's other holders at the start of
// a fetch, and the first blocks need not wait a round trip for the
// answer. Until it comes, the first sources ask for as much as they may
// ever hold ([Options.MaxWindow], in requests of [Options.MaxRequestBytes]),
// whatever their windows, so that a study smaller than that is asked
// for in the first round trip; and the transfer does not fail for want
// of sources. When sources join, each source there before keeps its
// requests, oldest first, up to a fair share of what is left (the queue
// and what every source still owes, over the active sources); the rest
// are cancelled (a request is a stream: the blocks it delivered stay)
// and their blocks shared among all.
//
// # Failures
//
// A source is dropped from the transfer when its Fetch returns an error,
// when it ends a request without sending every block, when it sent
// nothing for [Options.StallTimeout] while it owed blocks
// ([ErrStalled]), or at once when it sends bytes that fail Verify or a
// block it was not asked for ([ErrCorrupt]: the node audits such a
// peer). Its outstanding blocks go back to the queue for the others. If
// every source is dropped, Fetch returns a [*SourcesError] (matching
// [ErrAllFailed] and each source's error) naming each and why; blocks the
// sink took stay taken, and [Result.Missing] is the plan of a run that
// resumes. An error from the sink ends the transfer: no other source can
// fix a local failure. Every goroutine the engine starts (one per request
// in flight, one feeding the sink) has ended when Fetch returns, also
// when ctx is cancelled.
//
// # What it must not import
//
// transfer imports none of pacsnet's packages (node, exchange, consent,
// crypto, dicomio), nothing of libp2p and no logger: the node adapts
// exchange's block fetch to a [Source] and its batched store writes to a
// [Sink]. deps_test.go states these rules with their reasons.
package transfer
