// Package dicomweb is DICOMweb (PS3.18) over small interfaces: [Service]
// serves QIDO-RS, WADO-RS and STOW-RS over a [Searcher], a [Retriever]
// and a [Storer] that the node implements (node/httpdicomweb.go), and
// the pieces it is built from are functions over data: the DICOM JSON
// model (PS3.18 F.2) of a data set ([JSON]), rendering a frame of a
// described instance as PNG or JPEG ([Render]), the media type of a
// stored frame ([FrameMediaType]), a QIDO-RS query string turned into a
// C-FIND-style identifier for the node's query room ([ParseQuery]),
// multipart/related bodies read and written as streams ([PartReader],
// [PartWriter]) and the Accept header a response type is chosen from
// ([ParseAccept]). Of pacsnet it imports only dicomio and internal/uid.
package dicomweb
