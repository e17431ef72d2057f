package dicomweb

import "github.com/pacsnet/pacsnet/dicomio"

// OctetStream is the media type of uncompressed frames and bulk data
// (PS3.18 table 8.7.3-4: little endian bytes).
const OctetStream = "application/octet-stream"

// frameMediaTypes maps encapsulated transfer syntaxes to the media type
// of one frame's compressed stream (PS3.18 table 8.7.3-5). The retired
// JPEG processes hold JPEG streams too.
var frameMediaTypes = func() map[string]string {
	m := map[string]string{
		"1.2.840.10008.1.2.5":     "image/dicom-rle",
		"1.2.840.10008.1.2.4.80":  "image/jls",
		"1.2.840.10008.1.2.4.81":  "image/jls",
		"1.2.840.10008.1.2.4.90":  "image/jp2",
		"1.2.840.10008.1.2.4.91":  "image/jp2",
		"1.2.840.10008.1.2.4.92":  "image/jpx",
		"1.2.840.10008.1.2.4.93":  "image/jpx",
		"1.2.840.10008.1.2.4.201": "image/jphc", // HTJ2K
		"1.2.840.10008.1.2.4.202": "image/jphc",
		"1.2.840.10008.1.2.4.203": "image/jphc",
		"1.2.840.10008.1.2.4.110": "image/jxl", // JPEG XL
		"1.2.840.10008.1.2.4.111": "image/jxl",
		"1.2.840.10008.1.2.4.112": "image/jxl",
		"1.2.840.10008.1.2.4.100": "video/mpeg", // MPEG-2
		"1.2.840.10008.1.2.4.101": "video/mpeg",
		"1.2.840.10008.1.2.4.102": "video/mp4", // MPEG-4 AVC/H.264
		"1.2.840.10008.1.2.4.103": "video/mp4",
		"1.2.840.10008.1.2.4.104": "video/mp4",
		"1.2.840.10008.1.2.4.105": "video/mp4",
		"1.2.840.10008.1.2.4.106": "video/mp4",
		"1.2.840.10008.1.2.4.107": "video/H265", // HEVC/H.265
		"1.2.840.10008.1.2.4.108": "video/H265",
		"1.2.840.10008.1.2.1.98":  OctetStream, // Encapsulated Uncompressed
	}
	for _, n := range []string{"50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64", "65", "66", "70"} {
		m["1.2.840.10008.1.2.4."+n] = "image/jpeg"
	}
	return m
}()

// nativeSyntaxes are the transfer syntaxes whose pixel data is native
// (uncompressed): their frames are served as application/octet-stream,
// little endian (dicomio.Description.FrameData swaps big endian ones).
var nativeSyntaxes = map[string]bool{
	dicomio.ImplicitVRLittleEndian:         true,
	dicomio.ExplicitVRLittleEndian:         true,
	dicomio.ExplicitVRBigEndian:            true,
	dicomio.DeflatedExplicitVRLittleEndian: true,
}

// FrameMediaType is the media type of one frame of pixel data stored in
// transfer syntax ts, as WADO-RS frames and bulk data retrieval serves it
// without transcoding: application/octet-stream for native syntaxes, the
// codec's media type (PS3.18 table 8.7.3-5: image/jpeg, image/jls,
// image/jp2, image/jpx, image/jphc, image/jxl, image/dicom-rle,
// video/mpeg, video/mp4, video/H265) for encapsulated ones. ok is false
// for syntaxes without frames of their own (JPIP referenced, SMPTE ST
// 2110, Deflated Image Frame Compression) and unknown ones.
func FrameMediaType(ts string) (mediaType string, ok bool) {
	if nativeSyntaxes[ts] {
		return OctetStream, true
	}
	mt, ok := frameMediaTypes[ts]
	return mt, ok
}
