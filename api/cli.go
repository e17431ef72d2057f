package api

// The documents below are what `pacsnet` commands print with --json where
// no route answers the same thing. Commands that only relay a route's
// answer print that type (peers: []Partner, grant: Grant, revoke:
// Revocation, …); docs/api.md lists which command prints what.

// InitResult is `pacsnet init --json`.
type InitResult struct {
	Home    string `json:"home"`     // the home directory as given
	Name    string `json:"name"`     // facility name
	AETitle string `json:"ae_title"` // DICOM AE title
	// The addresses init chose (config.toml's http_addr, p2p_addrs and
	// dicom_addr): the first ports from the defaults on that were free
	// and not named by another home beside this one.
	HTTPAddr  string   `json:"http_addr"`
	P2PAddrs  []string `json:"p2p_addrs"`
	DICOMAddr string   `json:"dicom_addr"`
}

// ImportFileResult is one file's line in ImportReport: its path and what
// the node did with it.
type ImportFileResult struct {
	Path string `json:"path"` // the file as found under the paths given
	ImportResult
}

// ImportReport is `pacsnet import --json`.
type ImportReport struct {
	Results []ImportFileResult `json:"results"` // one per file, in walk order
	Summary map[string]int     `json:"summary"` // files per outcome (Outcome* constants)
	Bytes   int64              `json:"bytes"`   // bytes stored
	Seconds float64            `json:"seconds"` // wall time
	Skipped int                `json:"skipped"` // files passed over in folders (hidden, DICOMDIR, links, plainly not DICOM)
}

// FetchReport is `pacsnet fetch --json`: the fetch as it ended.
type FetchReport struct {
	Fetch        FetchJob `json:"fetch"`         // the fetch's last state
	Seconds      float64  `json:"seconds"`       // from start to finish
	BytesFetched int64    `json:"bytes_fetched"` // bytes received by this fetch (not resumed)
}

// Version is `pacsnet version --json`.
type Version struct {
	Version string `json:"version"` // the module version, or (devel) for a build from a working tree
	Go      string `json:"go"`      // the Go release it was built with
}

// SynthResult is `pacsnet synth --json`.
type SynthResult struct {
	StudyUID string `json:"study_uid"` // the generated study
	Files    int    `json:"files"`     // files written
	Dir      string `json:"dir"`       // the folder, as given
}
