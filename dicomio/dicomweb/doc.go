// Package dicomweb holds the pieces of DICOMweb (PS3.18) that are
// functions over data: the DICOM JSON model (PS3.18 F.2) of a data set.
// The HTTP services (QIDO-RS, WADO-RS, STOW-RS) are built on it in the
// node. Of pacsnet it imports only dicomio.
package dicomweb
