// Package dicomweb holds the pieces of DICOMweb (PS3.18) that are
// functions over data: the DICOM JSON model (PS3.18 F.2) of a data set
// ([JSON]), rendering a frame of a described instance as PNG or JPEG
// ([Render]), and the media type of a stored frame ([FrameMediaType]).
// The HTTP services (QIDO-RS, WADO-RS, STOW-RS) are built on it. Of
// pacsnet it imports only dicomio.
package dicomweb
