package dicomweb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"strings"

	"github.com/pacsnet/pacsnet/dicomio"
)

// Rendered media types.
const (
	MediaPNG  = "image/png"
	MediaJPEG = "image/jpeg"
)

// ErrCannotRender is wrapped, with the reason, by every error of Render
// that says the frame cannot be rendered as asked (a codec, photometric
// interpretation, bit depth or size we do not render, an unknown VOI
// function): the service answers 406 Not Acceptable.
var ErrCannotRender = errors.New("cannot render")

// ErrNoSuchFrame is wrapped by Render's error for a frame number the
// instance does not have.
var ErrNoSuchFrame = errors.New("no such frame")

// maxRenderPixels bounds the samples of a frame Render decodes and of the
// image it draws: a 64 Mpixel frame costs at most a few hundred MB.
const maxRenderPixels = 64 << 20

// maxViewport bounds each viewport dimension.
const maxViewport = 16384

// Window is a VOI window (PS3.3 C.11.2.1.2) over modality values. It is
// an alias of the struct type, so &Window{...} and &struct{...}{...}
// are the same thing.
type Window = struct {
	Center, Width float64
	Function      string // LINEAR (default), LINEAR_EXACT or SIGMOID
}

// RenderParams are the rendering parameters of WADO-RS rendered
// resources (PS3.18 8.3.5.1).
type RenderParams struct {
	// Window is the VOI window; nil: the data set's first Window Center
	// and Width, else the frame's minimum to maximum.
	Window *Window
	// ViewportW, ViewportH: 0 and 0 for the frame's own size; otherwise
	// the image is scaled to fit within them, keeping its aspect ratio
	// (one of them 0: that dimension follows from the other).
	ViewportW, ViewportH int
	Quality              int    // JPEG quality 1-100, default 90
	Annotation           string // accepted and ignored
}

const (
	jpegBaseline             = "1.2.840.10008.1.2.4.50"
	encapsulatedUncompressed = "1.2.840.10008.1.2.1.98" // native frames, one a fragment
)

func cannot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCannotRender, fmt.Sprintf(format, args...))
}

// Render draws frame (1-based) of the described instance b as mediaType
// "image/png" or "image/jpeg", 8 bits a channel. It renders native
// MONOCHROME1/2 (8 or 16 bits allocated, signed or not, with rescale and
// VOI window), native RGB (8 bits, either planar configuration) and
// JPEG baseline (1.2.840.10008.1.2.4.50). Anything else is an error
// wrapping ErrCannotRender that names what it cannot render.
func Render(d *dicomio.Description, b []byte, frame int, mediaType string, p RenderParams) ([]byte, error) {
	if mediaType != MediaPNG && mediaType != MediaJPEG {
		return nil, cannot("rendered media type %q is not produced (image/png and image/jpeg are)", mediaType)
	}
	px := d.Pixel
	if px == nil {
		return nil, cannot("the instance has no pixel data")
	}
	if frame < 1 || frame > px.NumberOfFrames {
		return nil, fmt.Errorf("render frame: %w: frame %d is not in 1..%d", ErrNoSuchFrame, frame, px.NumberOfFrames)
	}
	if px.Rows <= 0 || px.Columns <= 0 || px.SamplesPerPixel <= 0 {
		return nil, cannot("pixel data of %dx%d pixels and %d samples", px.Columns, px.Rows, px.SamplesPerPixel)
	}
	if int64(px.Rows)*int64(px.Columns)*int64(px.SamplesPerPixel) > maxRenderPixels {
		return nil, cannot("a frame of %dx%d pixels and %d samples is over the %d-Mpixel limit", px.Columns, px.Rows, px.SamplesPerPixel, maxRenderPixels>>20)
	}
	if p.ViewportW < 0 || p.ViewportH < 0 || p.ViewportW > maxViewport || p.ViewportH > maxViewport {
		return nil, cannot("viewport %dx%d is outside 0..%d", p.ViewportW, p.ViewportH, maxViewport)
	}
	if p.Window != nil {
		if _, err := voiFunction(p.Window.Function); err != nil {
			return nil, err
		}
	}
	if len(px.Frames) == 0 {
		return nil, cannot("the pixel data cannot be cut into frames")
	}
	var img image.Image
	var err error
	switch ts := d.TransferSyntax; {
	case nativeSyntaxes[ts], ts == encapsulatedUncompressed:
		img, err = renderNative(d, b, frame, p)
	case ts == jpegBaseline:
		var passed []byte
		passed, img, err = renderJPEG(d, b, frame, mediaType, p)
		if passed != nil {
			return passed, nil
		}
	default:
		return nil, cannot("transfer syntax %s (%s) is not decoded here", ts, syntaxName(ts))
	}
	if err != nil {
		return nil, err
	}
	if img, err = fit(img, p.ViewportW, p.ViewportH); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if mediaType == MediaPNG {
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		err = enc.Encode(&out, img)
	} else {
		q := p.Quality
		if q <= 0 {
			q = 90
		}
		err = jpeg.Encode(&out, img, &jpeg.Options{Quality: min(q, 100)})
	}
	if err != nil {
		return nil, fmt.Errorf("render frame: encode %s: %w", mediaType, err)
	}
	return out.Bytes(), nil
}

func syntaxName(ts string) string {
	switch {
	case strings.HasPrefix(ts, "1.2.840.10008.1.2.4.9"), ts == "1.2.840.10008.1.2.4.201", ts == "1.2.840.10008.1.2.4.202", ts == "1.2.840.10008.1.2.4.203":
		return "JPEG 2000"
	case ts == "1.2.840.10008.1.2.4.80", ts == "1.2.840.10008.1.2.4.81":
		return "JPEG-LS"
	case ts == "1.2.840.10008.1.2.4.57", ts == "1.2.840.10008.1.2.4.70":
		return "lossless JPEG"
	case ts == "1.2.840.10008.1.2.4.51":
		return "12-bit JPEG"
	case ts == "1.2.840.10008.1.2.5":
		return "RLE"
	case ts == "1.2.840.10008.1.2.8.1":
		return "deflated image frames"
	case strings.HasPrefix(ts, "1.2.840.10008.1.2.4.10"):
		return "video"
	case strings.HasPrefix(ts, "1.2.840.10008.1.2.4.11"):
		return "JPEG XL"
	case strings.HasPrefix(ts, "1.2.840.10008.1.2.4.5"), strings.HasPrefix(ts, "1.2.840.10008.1.2.4.6"):
		return "a JPEG process other than baseline"
	}
	return "not a codec rendered here"
}

// renderNative decodes a native frame.
func renderNative(d *dicomio.Description, b []byte, frame int, p RenderParams) (image.Image, error) {
	px := d.Pixel
	data, err := d.FrameData(b, frame)
	if err != nil {
		return nil, fmt.Errorf("render frame: %w", err)
	}
	n := px.Rows * px.Columns
	switch px.Photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if px.SamplesPerPixel != 1 {
			return nil, cannot("%s with %d samples per pixel", px.Photometric, px.SamplesPerPixel)
		}
		if px.BitsAllocated != 8 && px.BitsAllocated != 16 {
			return nil, cannot("monochrome pixels of %d bits allocated (8 and 16 are rendered)", px.BitsAllocated)
		}
		bytesPer := px.BitsAllocated / 8
		if len(data) < n*bytesPer {
			return nil, fmt.Errorf("render frame: frame %d has %d bytes; %d pixels need %d", frame, len(data), n, n*bytesPer)
		}
		raw := make([]uint16, n)
		if bytesPer == 1 {
			for i := range raw {
				raw[i] = uint16(data[i])
			}
		} else {
			for i := range raw {
				raw[i] = binary.LittleEndian.Uint16(data[2*i:])
			}
		}
		return mono(px, raw, px.BitsAllocated, p)
	case "RGB":
		if px.SamplesPerPixel != 3 || px.BitsAllocated != 8 {
			return nil, cannot("RGB pixels of %d samples and %d bits allocated (3 and 8 are rendered)", px.SamplesPerPixel, px.BitsAllocated)
		}
		if len(data) < 3*n {
			return nil, fmt.Errorf("render frame: frame %d has %d bytes; %d RGB pixels need %d", frame, len(data), n, 3*n)
		}
		img := image.NewNRGBA(image.Rect(0, 0, px.Columns, px.Rows))
		for i := 0; i < n; i++ {
			var r, g, bl byte
			if px.PlanarConfiguration == 1 {
				r, g, bl = data[i], data[n+i], data[2*n+i]
			} else {
				r, g, bl = data[3*i], data[3*i+1], data[3*i+2]
			}
			img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = r, g, bl, 0xFF
		}
		return img, nil
	}
	return nil, cannot("photometric interpretation %q is not rendered (MONOCHROME1, MONOCHROME2 and RGB are)", px.Photometric)
}

// mono maps stored values (in cells of bitsAllocated bits) through the
// modality rescale and the VOI window to grey levels, by a table over
// every stored value.
func mono(px *dicomio.PixelData, raw []uint16, bitsAllocated int, p RenderParams) (image.Image, error) {
	bs, hb := px.BitsStored, px.HighBit
	if bs <= 0 || bs > bitsAllocated || hb >= bitsAllocated || hb+1 < bs {
		bs, hb = bitsAllocated, bitsAllocated-1
	}
	shift := uint(hb + 1 - bs)
	mask := uint32(1)<<uint(bs) - 1
	signed := px.PixelRepresentation == 1
	slope, intercept := px.RescaleSlope, px.RescaleIntercept
	if slope == 0 {
		slope = 1
	}
	modality := func(s uint32) float64 {
		v := int64(s)
		if signed && s&(1<<uint(bs-1)) != 0 {
			v -= int64(1) << uint(bs)
		}
		return float64(v)*slope + intercept
	}
	stored := func(r uint16) uint32 { return (uint32(r) >> shift) & mask }

	var win Window
	switch {
	case p.Window != nil:
		win = *p.Window
	case len(px.WindowCenter) > 0 && len(px.WindowWidth) > 0 && px.WindowWidth[0] > 0:
		win = Window{Center: px.WindowCenter[0], Width: px.WindowWidth[0], Function: px.VOILUTFunction}
	default:
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range raw {
			v := modality(stored(r))
			lo, hi = min(lo, v), max(hi, v)
		}
		if len(raw) == 0 {
			lo, hi = 0, 1
		}
		win = Window{Center: (lo + hi) / 2, Width: max(hi-lo, 1), Function: "LINEAR_EXACT"}
	}
	fn, err := voiFunction(win.Function)
	if err != nil {
		if p.Window != nil {
			return nil, err
		}
		fn = "LINEAR" // an unknown function in the data set: the default
	}
	if win.Width <= 0 || (fn == "LINEAR" && win.Width < 1) || math.IsNaN(win.Center) || math.IsInf(win.Center, 0) || math.IsInf(win.Width, 0) {
		return nil, cannot("window width %g is not valid for the %s VOI function", win.Width, fn)
	}
	invert := px.Photometric == "MONOCHROME1"
	lut := make([]uint8, int(mask)+1)
	for s := range lut {
		y := voi(modality(uint32(s)), win.Center, win.Width, fn)
		if invert {
			y = 255 - y
		}
		lut[s] = y
	}
	img := image.NewGray(image.Rect(0, 0, px.Columns, px.Rows))
	for i, r := range raw {
		img.Pix[i] = lut[stored(r)]
	}
	return img, nil
}

func voiFunction(f string) (string, error) {
	switch fn := strings.ToUpper(strings.TrimSpace(f)); fn {
	case "", "LINEAR":
		return "LINEAR", nil
	case "LINEAR_EXACT", "SIGMOID":
		return fn, nil
	}
	return "", cannot("VOI LUT function %q is not known (LINEAR, LINEAR_EXACT, SIGMOID are)", f)
}

// voi applies a VOI window to x, giving 0..255 (PS3.3 C.11.2.1.2.1
// LINEAR, C.11.2.1.3.1 SIGMOID, C.11.2.1.3.2 LINEAR_EXACT).
func voi(x, c, w float64, fn string) uint8 {
	var y float64 // 0..1
	switch fn {
	case "LINEAR_EXACT":
		switch {
		case x <= c-w/2:
			y = 0
		case x > c+w/2:
			y = 1
		default:
			y = (x-c)/w + 0.5
		}
	case "SIGMOID":
		y = 1 / (1 + math.Exp(-4*(x-c)/w))
	default:
		switch {
		case x <= c-0.5-(w-1)/2:
			y = 0
		case x > c-0.5+(w-1)/2:
			y = 1
		default:
			y = (x-(c-0.5))/(w-1) + 0.5
		}
	}
	return uint8(math.Round(math.Min(math.Max(y, 0), 1) * 255))
}

// renderJPEG decodes a JPEG baseline frame, or, when the frame can be
// served as it is (JPEG asked for, no window, no viewport, a colour or
// MONOCHROME2 image without a rescale or window to apply), returns it.
func renderJPEG(d *dicomio.Description, b []byte, frame int, mediaType string, p RenderParams) ([]byte, image.Image, error) {
	px := d.Pixel
	if px.BitsAllocated != 8 {
		return nil, nil, cannot("JPEG baseline with %d bits allocated", px.BitsAllocated)
	}
	switch px.Photometric {
	case "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422":
	default:
		return nil, nil, cannot("JPEG baseline of photometric interpretation %q", px.Photometric)
	}
	data, err := d.FrameData(b, frame)
	if err != nil {
		return nil, nil, fmt.Errorf("render frame: %w", err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, nil, cannot("frame %d is not a JPEG stream Go decodes (%v)", frame, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height)*3 > maxRenderPixels {
		return nil, nil, cannot("a JPEG frame of %dx%d pixels is over the %d-Mpixel limit", cfg.Width, cfg.Height, maxRenderPixels>>20)
	}
	monoPlain := px.Photometric == "MONOCHROME2" && len(px.WindowCenter) == 0 && px.RescaleSlope == 1 && px.RescaleIntercept == 0
	if mediaType == MediaJPEG && p.Window == nil && p.ViewportW == 0 && p.ViewportH == 0 &&
		(strings.HasPrefix(px.Photometric, "YBR") || monoPlain) {
		return data, nil, nil
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, nil, cannot("frame %d does not decode as JPEG (%v)", frame, err)
	}
	switch m := img.(type) {
	case *image.Gray:
		if !strings.HasPrefix(px.Photometric, "MONOCHROME") {
			return nil, img, nil
		}
		raw := make([]uint16, len(m.Pix))
		for i, v := range m.Pix {
			raw[i] = uint16(v)
		}
		mp := *px
		mp.Rows, mp.Columns, mp.BitsStored, mp.HighBit, mp.PixelRepresentation = m.Rect.Dy(), m.Rect.Dx(), 8, 7, 0
		if m.Stride != m.Rect.Dx() {
			return nil, nil, cannot("JPEG grey image with padded rows")
		}
		g, err := mono(&mp, raw, 8, p)
		return nil, g, err
	case *image.YCbCr:
		if px.Photometric == "RGB" && m.SubsampleRatio == image.YCbCrSubsampleRatio444 && !bytes.Contains(data[:min(len(data), 32)], []byte("JFIF")) {
			// DICOM says the stream holds RGB without a colour transform,
			// which the decoder could not know (a JFIF stream is YCbCr
			// whatever the label): its planes are R, G, B.
			out := image.NewNRGBA(m.Rect)
			for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y++ {
				for x := m.Rect.Min.X; x < m.Rect.Max.X; x++ {
					yi, ci := m.YOffset(x, y), m.COffset(x, y)
					out.SetNRGBA(x, y, color.NRGBA{m.Y[yi], m.Cb[ci], m.Cr[ci], 0xFF})
				}
			}
			return nil, out, nil
		}
	}
	return nil, img, nil
}

// fit scales img to fit within w x h keeping its aspect ratio (0 x 0:
// unchanged): an area average when shrinking, bilinear when enlarging.
func fit(img image.Image, w, h int) (image.Image, error) {
	if w == 0 && h == 0 {
		return img, nil
	}
	sw, sh := img.Bounds().Dx(), img.Bounds().Dy()
	s := math.Inf(1)
	if w > 0 {
		s = float64(w) / float64(sw)
	}
	if h > 0 {
		s = min(s, float64(h)/float64(sh))
	}
	ow, oh := max(1, int(math.Round(float64(sw)*s))), max(1, int(math.Round(float64(sh)*s)))
	if w > 0 {
		ow = min(ow, w)
	}
	if h > 0 {
		oh = min(oh, h)
	}
	if ow == sw && oh == sh {
		return img, nil
	}
	if int64(ow)*int64(oh) > maxRenderPixels/4 {
		return nil, cannot("a rendered image of %dx%d pixels is over the limit", ow, oh)
	}
	var src []uint8
	var ch, stride int
	switch m := img.(type) {
	case *image.Gray:
		src, ch, stride = m.Pix, 1, m.Stride
	case *image.NRGBA:
		src, ch, stride = m.Pix, 4, m.Stride
	default: // a decoded colour JPEG: opaque, so RGBA is NRGBA
		n := image.NewRGBA(image.Rect(0, 0, sw, sh))
		draw.Draw(n, n.Rect, img, img.Bounds().Min, draw.Src)
		src, ch, stride = n.Pix, 4, n.Stride
	}
	dst := make([]uint8, ow*oh*ch)
	scale(src, stride, sw, sh, dst, ow, oh, ch)
	if ch == 1 {
		return &image.Gray{Pix: dst, Stride: ow, Rect: image.Rect(0, 0, ow, oh)}, nil
	}
	return &image.NRGBA{Pix: dst, Stride: 4 * ow, Rect: image.Rect(0, 0, ow, oh)}, nil
}

func scale(src []uint8, stride, sw, sh int, dst []uint8, dw, dh, ch int) {
	fx, fy := float64(sw)/float64(dw), float64(sh)/float64(dh)
	var acc [4]float64
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			o := (y*dw + x) * ch
			if fx > 1 || fy > 1 {
				// Area average over the source pixels the output covers.
				x0, x1 := int(float64(x)*fx), max(int(float64(x+1)*fx), int(float64(x)*fx)+1)
				y0, y1 := int(float64(y)*fy), max(int(float64(y+1)*fy), int(float64(y)*fy)+1)
				x1, y1 = min(x1, sw), min(y1, sh)
				acc = [4]float64{}
				for sy := y0; sy < y1; sy++ {
					for sx := x0; sx < x1; sx++ {
						for c := 0; c < ch; c++ {
							acc[c] += float64(src[sy*stride+sx*ch+c])
						}
					}
				}
				n := float64((x1 - x0) * (y1 - y0))
				for c := 0; c < ch; c++ {
					dst[o+c] = uint8(math.Round(acc[c] / n))
				}
				continue
			}
			// Bilinear, sampling at pixel centres.
			sxf := max((float64(x)+0.5)*fx-0.5, 0)
			syf := max((float64(y)+0.5)*fy-0.5, 0)
			x0, y0 := int(sxf), int(syf)
			x1, y1 := min(x0+1, sw-1), min(y0+1, sh-1)
			ax, ay := sxf-float64(x0), syf-float64(y0)
			for c := 0; c < ch; c++ {
				p00 := float64(src[y0*stride+x0*ch+c])
				p01 := float64(src[y0*stride+x1*ch+c])
				p10 := float64(src[y1*stride+x0*ch+c])
				p11 := float64(src[y1*stride+x1*ch+c])
				v := (p00*(1-ax)+p01*ax)*(1-ay) + (p10*(1-ax)+p11*ax)*ay
				dst[o+c] = uint8(math.Round(v))
			}
		}
	}
}
