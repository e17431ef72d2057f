// Package dicomweb holds the pieces of DICOMweb (PS3.18) that are
// functions over data: the DICOM JSON model (PS3.18 F.2) of a data set.
// The HTTP services (QIDO-RS, WADO-RS, STOW-RS) are built on it in the
// node. Of pacsnet it imports only dicomio.
//
// The request side is here too: [ParseQuery] turns a QIDO-RS query
// string into a C-FIND-style identifier for the node's query room,
// [PartReader] and [PartWriter] read and write multipart/related bodies
// (STOW-RS requests, WADO-RS responses) as streams, and [ParseAccept]
// reads the Accept header a WADO-RS response type is chosen from.
package dicomweb
