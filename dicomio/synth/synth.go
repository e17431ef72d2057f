package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// CTOptions describes the study to generate. Zero fields take defaults.
type CTOptions struct {
	Slices      int    // default 200
	Rows, Cols  int    // default 512x512
	Seed        int64  // deterministic output for a seed (UIDs derived from it)
	PatientName string // default "SYNTHETIC^CT"
	PatientID   string // default derived from the seed: "SYN-<8 digits>"
	// StudyUID is written as given (default derived from the seed), so that
	// tests can make the non-conforming UIDs real archives hold; it is
	// refused only if it cannot be encoded (over 64 bytes, a delimiter).
	StudyUID string
}

// File is one generated instance. Name carries no patient data.
type File struct {
	Name string // "CT000001.dcm"
	Data []byte // Part-10 bytes, preamble zero
}

// Geometry of the series.
const (
	sliceThickness = 1.25  // mm, also the spacing between slice positions
	fieldOfView    = 350.0 // mm across the columns
	maxDim         = 4096
	maxSlices      = 10000
	ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	explicitLE     = "1.2.840.10008.1.2.1"
	implClassUID   = "1.2.826.0.1.3680043.10.1455.2"
	implVersion    = "PACSNET_SYNTH"
)

func (o CTOptions) withDefaults() (CTOptions, error) {
	if o.Slices == 0 {
		o.Slices = 200
	}
	if o.Rows == 0 {
		o.Rows = 512
	}
	if o.Cols == 0 {
		o.Cols = 512
	}
	switch {
	case o.Slices < 0 || o.Slices > maxSlices:
		return o, fmt.Errorf("slices %d out of range 1..%d", o.Slices, maxSlices)
	case o.Rows < 0 || o.Rows > maxDim || o.Cols < 0 || o.Cols > maxDim:
		return o, fmt.Errorf("image size %dx%d out of range 1..%d", o.Rows, o.Cols, maxDim)
	}
	if o.PatientName == "" {
		o.PatientName = "SYNTHETIC^CT"
	}
	if o.PatientID == "" {
		o.PatientID = fmt.Sprintf("SYN-%08d", derive(o.Seed, "patient-id", 0).Uint64()%100_000_000)
	}
	if o.StudyUID == "" {
		o.StudyUID = uid(o.Seed, "study", 0)
	}
	for _, v := range []struct{ name, s string }{{"patient name", o.PatientName}, {"patient ID", o.PatientID}, {"study UID", o.StudyUID}} {
		if len(v.s) > 64 || strings.ContainsAny(v.s, "\\\x00\r\n") {
			return o, fmt.Errorf("%s is longer than 64 bytes or contains a delimiter", v.name)
		}
	}
	return o, nil
}

// CT generates one study in memory. 200 slices of 512x512 are about
// 100 MiB; use [WriteCT] to stream them to disk instead.
func CT(opts CTOptions) (studyUID string, files []File, err error) {
	studyUID, err = generate(opts, func(f File) error {
		files = append(files, f)
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return studyUID, files, nil
}

// WriteCT generates one study into dir (created if needed), one file per
// slice, each written with mode 0644 and fsynced, then the directory
// fsynced. It returns the paths in slice order.
func WriteCT(dir string, opts CTOptions) (studyUID string, paths []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("create directory: %w", err)
	}
	studyUID, err = generate(opts, func(f File) error {
		p := filepath.Join(dir, f.Name)
		if err := writeFileSync(p, f.Data); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", nil, fmt.Errorf("open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return "", nil, fmt.Errorf("sync directory: %w", err)
	}
	return studyUID, paths, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close file: %w", err)
	}
	return nil
}

// derive returns a 128-bit number derived from the seed, a purpose and an
// index, shaped as a UUID version 8 so that "2.25.<n>" is a UUID-derived
// UID as PS3.5 B.2 describes.
func derive(seed int64, purpose string, i int) *big.Int {
	h := sha256.Sum256([]byte("pacsnet synth/" + strconv.FormatInt(seed, 10) + "/" + purpose + "/" + strconv.Itoa(i)))
	b := h[:16]
	b[6] = b[6]&0x0F | 0x80 // version 8 (custom)
	b[8] = b[8]&0x3F | 0x80 // RFC 9562 variant
	return new(big.Int).SetBytes(b)
}

func uid(seed int64, purpose string, i int) string {
	return "2.25." + derive(seed, purpose, i).String()
}

// series holds what all slices share.
type series struct {
	opts                      CTOptions
	study, series, frameOfRef string
	date, time, accession     string
	spacing                   float64
	x0, y0                    float64 // ImagePositionPatient x, y of the first pixel
}

// generate makes the slices in order and hands each to emit. Pixel
// synthesis, the expensive part, runs on all CPUs; generate waits for its
// workers before it returns, whatever happens.
func generate(opts CTOptions, emit func(File) error) (string, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", fmt.Errorf("generate CT: %w", err)
	}
	d := derive(o.Seed, "date", 0).Uint64()
	s := &series{
		opts:       o,
		study:      o.StudyUID,
		series:     uid(o.Seed, "series", 0),
		frameOfRef: uid(o.Seed, "frame-of-reference", 0),
		// A date in 2020..2024 and a time in working hours, from the seed.
		date:      fmt.Sprintf("%04d%02d%02d", 2020+d%5, 1+(d/5)%12, 1+(d/60)%28),
		time:      fmt.Sprintf("%02d%02d%02d", 7+(d/1680)%11, (d/18480)%60, (d/1108800)%60),
		accession: fmt.Sprintf("SYNA%08d", (d/66528000)%100_000_000),
		spacing:   fieldOfView / float64(o.Cols),
	}
	s.x0 = -s.spacing * float64(o.Cols-1) / 2
	s.y0 = -s.spacing * float64(o.Rows-1) / 2

	workers := max(1, min(runtime.GOMAXPROCS(0), o.Slices))
	type result struct {
		f   File
		err error
	}
	// Each slice has its own result channel so that emit sees slices in
	// order while workers run ahead; tokens bound how far (2 per worker),
	// so memory stays bounded when emit is slow (disk writes).
	jobs := make(chan int)
	tokens := make(chan struct{}, 2*workers)
	stop := make(chan struct{})
	results := make([]chan result, o.Slices)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f, err := s.slice(i)
				results[i] <- result{f, err} // buffered: never blocks
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for i := 0; i < o.Slices; i++ {
			select {
			case tokens <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case jobs <- i:
			case <-stop:
				return
			}
		}
	}()
	var firstErr error
	for i := 0; i < o.Slices && firstErr == nil; i++ {
		r := <-results[i]
		<-tokens
		switch {
		case r.err != nil:
			firstErr = fmt.Errorf("generate CT slice %d: %w", i+1, r.err)
		default:
			if err := emit(r.f); err != nil {
				firstErr = fmt.Errorf("emit CT slice %d: %w", i+1, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if firstErr != nil {
		return "", firstErr
	}
	return s.study, nil
}

var errWrite = errors.New("dicom writer failed")

// slice builds instance i (0-based).
func (s *series) slice(i int) (f File, err error) {
	o := s.opts
	z := -float64(i) * sliceThickness
	pixels := s.phantom(i)

	ds := dicom.Dataset{}
	add := func(t tag.Tag, v any) {
		if err != nil {
			return
		}
		var e *dicom.Element
		if e, err = dicom.NewElement(t, v); err == nil {
			ds.Elements = append(ds.Elements, e)
		}
	}
	sop := uid(o.Seed, "instance", i)
	str := func(v ...string) []string { return v }
	add(tag.FileMetaInformationVersion, []byte{0, 1})
	add(tag.MediaStorageSOPClassUID, str(ctImageStorage))
	add(tag.MediaStorageSOPInstanceUID, str(sop))
	add(tag.TransferSyntaxUID, str(explicitLE))
	add(tag.ImplementationClassUID, str(implClassUID))
	add(tag.ImplementationVersionName, str(implVersion))

	add(tag.SpecificCharacterSet, str("ISO_IR 192"))
	add(tag.ImageType, str("ORIGINAL", "PRIMARY", "AXIAL"))
	add(tag.SOPClassUID, str(ctImageStorage))
	add(tag.SOPInstanceUID, str(sop))
	add(tag.StudyDate, str(s.date))
	add(tag.SeriesDate, str(s.date))
	add(tag.ContentDate, str(s.date))
	add(tag.StudyTime, str(s.time))
	add(tag.SeriesTime, str(s.time))
	add(tag.ContentTime, str(s.time))
	add(tag.AccessionNumber, str(s.accession))
	add(tag.Modality, str("CT"))
	add(tag.Manufacturer, str("pacsnet synth"))
	add(tag.ReferringPhysicianName, str(""))
	add(tag.StudyDescription, str("SYNTHETIC CT PHANTOM"))
	add(tag.SeriesDescription, str("AXIAL 1.25 MM"))
	add(tag.PatientName, str(o.PatientName))
	add(tag.PatientID, str(o.PatientID))
	add(tag.PatientBirthDate, str(""))
	add(tag.PatientSex, str("O"))
	add(tag.BodyPartExamined, str("CHEST"))
	add(tag.SliceThickness, str(ds16(sliceThickness)))
	add(tag.KVP, str("120"))
	add(tag.PatientPosition, str("HFS"))
	add(tag.StudyInstanceUID, str(s.study))
	add(tag.SeriesInstanceUID, str(s.series))
	add(tag.StudyID, str("1"))
	add(tag.SeriesNumber, str("1"))
	add(tag.AcquisitionNumber, str("1"))
	add(tag.InstanceNumber, str(strconv.Itoa(i+1)))
	add(tag.ImagePositionPatient, str(ds16(s.x0), ds16(s.y0), ds16(z)))
	add(tag.ImageOrientationPatient, str("1", "0", "0", "0", "1", "0"))
	add(tag.FrameOfReferenceUID, str(s.frameOfRef))
	add(tag.PositionReferenceIndicator, str(""))
	add(tag.SliceLocation, str(ds16(z)))
	add(tag.SamplesPerPixel, []int{1})
	add(tag.PhotometricInterpretation, str("MONOCHROME2"))
	add(tag.Rows, []int{o.Rows})
	add(tag.Columns, []int{o.Cols})
	add(tag.PixelSpacing, str(ds16(s.spacing), ds16(s.spacing)))
	add(tag.BitsAllocated, []int{16})
	add(tag.BitsStored, []int{12})
	add(tag.HighBit, []int{11})
	add(tag.PixelRepresentation, []int{0})
	add(tag.WindowCenter, str("40"))
	add(tag.WindowWidth, str("400"))
	add(tag.RescaleIntercept, str("-1024"))
	add(tag.RescaleSlope, str("1"))
	add(tag.RescaleType, str("HU"))
	add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pixels})
	if err != nil {
		return File{}, fmt.Errorf("build element: %w", err)
	}

	var buf bytes.Buffer
	buf.Grow(len(pixels) + 4096)
	if err := write(&buf, ds); err != nil {
		return File{}, err
	}
	return File{Name: fmt.Sprintf("CT%06d.dcm", i+1), Data: buf.Bytes()}, nil
}

// write calls the library writer behind a recover: it panics on some
// inputs (e.g. a writer without a transfer syntax).
func write(buf *bytes.Buffer, ds dicom.Dataset) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic: %v", errWrite, r)
		}
	}()
	if err := dicom.Write(buf, ds, dicom.SkipVRVerification()); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// ds16 formats a Decimal String value (at most 16 characters).
func ds16(v float64) string {
	for prec := -1; ; prec-- {
		var s string
		if prec == -1 {
			s = strconv.FormatFloat(v, 'f', -1, 64)
		} else {
			s = strconv.FormatFloat(v, 'g', 16+prec, 64)
		}
		if len(s) <= 16 || prec < -14 {
			return s
		}
	}
}

// shape is an ellipse filled with a CT number (HU), painted in order.
type shape struct {
	cx, cy, ax, ay float64 // mm, centre and semi-axes
	hu             int16
}

// phantom returns slice i's pixels as little endian uint16 stored values
// (HU + 1024, clamped to 12 bits). Shapes change size along z and the
// noise is seeded per slice, so every slice differs.
func (s *series) phantom(i int) []byte {
	o := s.opts
	t := 0.5
	if o.Slices > 1 {
		t = float64(i) / float64(o.Slices-1)
	}
	bw := 165 * (0.92 + 0.08*math.Sin(math.Pi*t)) // body half-width, mm
	bh := 115 * (0.90 + 0.10*math.Sin(math.Pi*t))
	lung := math.Max(0, math.Sin(math.Pi*(t*1.2-0.1))) // lungs grow, then shrink
	shapes := []shape{
		{0, 0, bw, bh, -100},                                               // subcutaneous fat
		{0, 0, bw * 0.93, bh * 0.92, 40},                                   // soft tissue
		{0, 0, bw * 0.82, bh * 0.80, 650},                                  // bone ring (ribs)
		{0, 0, bw * 0.78, bh * 0.76, 35},                                   // inside the ribs
		{-bw * 0.40, -bh * 0.08, bw * 0.28 * lung, bh * 0.50 * lung, -850}, // lungs
		{bw * 0.40, -bh * 0.08, bw * 0.28 * lung, bh * 0.50 * lung, -850},
		{0, bh * 0.55, 22, 20, 700},         // vertebral body, cortex
		{0, bh * 0.55, 16, 14, 250},         // marrow
		{bw * 0.12, bh * 0.25, 13, 13, 180}, // contrast-filled aorta
	}
	hu := make([]int16, o.Cols)
	out := make([]byte, 2*o.Rows*o.Cols)
	rng := newRNG(uint64(s.opts.Seed)*0x9E3779B97F4A7C15 ^ uint64(i+1)*0xBF58476D1CE4E5B9)
	for r := 0; r < o.Rows; r++ {
		y := s.y0 + float64(r)*s.spacing
		for c := range hu {
			hu[c] = -1000
		}
		for _, sh := range shapes {
			if sh.ax <= 0 || sh.ay <= 0 {
				continue
			}
			dy := (y - sh.cy) / sh.ay
			if dy <= -1 || dy >= 1 {
				continue
			}
			half := sh.ax * math.Sqrt(1-dy*dy)
			c0 := int(math.Ceil((sh.cx - half - s.x0) / s.spacing))
			c1 := int(math.Floor((sh.cx + half - s.x0) / s.spacing))
			c0, c1 = max(c0, 0), min(c1, o.Cols-1)
			for c := c0; c <= c1; c++ {
				hu[c] = sh.hu
			}
		}
		row := out[2*r*o.Cols : 2*(r+1)*o.Cols]
		for c := 0; c < o.Cols; c += 4 {
			// One 64-bit draw gives four 16-bit uniforms; two summed per
			// pixel give a triangular noise of about 12 HU s.d. in tissue.
			a, b := rng.next(), rng.next()
			for k := 0; k < 4 && c+k < o.Cols; k++ {
				n := int(uint16(a>>(16*k))>>10) + int(uint16(b>>(16*k))>>10) - 63 // -63..63
				v := int(hu[c+k]) + 1024
				if v > 24 { // keep air clean-ish, like a real scanner's air
					v += n / 2
				} else {
					v += n / 16
				}
				v = min(max(v, 0), 4095)
				binary.LittleEndian.PutUint16(row[2*(c+k):], uint16(v))
			}
		}
	}
	return out
}

// rng is splitmix64: fast, deterministic, good enough for image noise.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}
