package netsim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Chart is one PNG plot of a report: lines or points of series on two
// axes. A report with charts implements [Charter]; WriteMarkdown saves
// them beside its Markdown and shows them.
type Chart struct {
	// Name goes into the file's name (<base>-<Name>.png): lower case,
	// no spaces.
	Name   string
	Title  string
	X, Y   string // the axes' labels, with their units
	Series []Series
	// LogX puts the X axis on a log scale (every X must be above 0).
	LogX bool
	// XTicks, if any, are the X axis's labelled ticks (e.g. the node
	// counts of a sweep), instead of gonum's choice.
	XTicks []float64
	// Legend is where the legend goes, out of the data's way.
	Legend Corner
}

// Corner is a place on a chart for its legend.
type Corner int

const (
	TopLeft Corner = iota
	TopRight
	BottomRight
	MiddleRight
)

// Series is one set of points on a chart, drawn as Style says.
type Series struct {
	Label string
	X, Y  []float64
	Style Style
}

// Style is how a series is drawn.
type Style int

const (
	Points     Style = iota // a marker per point (measurements)
	Line                    // a line through the points in order (ideals, CDFs)
	LinePoints              // both
)

// Charter is a report with charts.
type Charter interface {
	Charts() []Chart
}

// CDF is the empirical distribution of ds as a series: X in
// milliseconds, Y the fraction of values at or below it, a step per
// value.
func CDF(label string, ds []time.Duration) Series {
	s := slices.Clone(ds)
	slices.Sort(s)
	out := Series{Label: label, Style: Line}
	for i, d := range s {
		x := float64(d) / float64(time.Millisecond)
		out.X = append(out.X, x, x)
		out.Y = append(out.Y, float64(i)/float64(len(s)), float64(i+1)/float64(len(s)))
	}
	return out
}

// Diagonal is the line y = x from lo to hi, for "measured against
// ideal" charts.
func Diagonal(label string, lo, hi float64) Series {
	return Series{Label: label, X: []float64{lo, hi}, Y: []float64{lo, hi}, Style: Line}
}

// The size of a chart: small PNGs (576×384 pixels at gonum's 96 dpi).
const chartW, chartH = 6 * vg.Inch, 4 * vg.Inch

// PNG renders the chart as a PNG.
func (c Chart) PNG() ([]byte, error) {
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.X
	p.Y.Label.Text = c.Y
	if c.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if len(c.XTicks) > 0 {
		var ts plot.ConstantTicks
		for _, x := range c.XTicks {
			ts = append(ts, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', -1, 64)})
		}
		p.X.Tick.Marker = ts
	}
	p.Add(plotter.NewGrid())
	switch c.Legend {
	case TopLeft:
		p.Legend.Top, p.Legend.Left = true, true
	case TopRight:
		p.Legend.Top = true
	case MiddleRight:
		p.Legend.Top, p.Legend.YOffs = true, -chartH/4
	}
	for i, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("chart %s: series %q has %d X and %d Y", c.Name, s.Label, len(s.X), len(s.Y))
		}
		if len(s.X) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.X))
		for k := range s.X {
			xys[k].X, xys[k].Y = s.X[k], s.Y[k]
		}
		var thumbs []plot.Thumbnailer
		if s.Style == Line || s.Style == LinePoints {
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", c.Name, err)
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i)
			l.Width = vg.Points(1.5)
			p.Add(l)
			thumbs = append(thumbs, l)
		}
		if s.Style == Points || s.Style == LinePoints {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", c.Name, err)
			}
			sc.Color = plotutil.Color(i)
			sc.Shape = plotutil.Shape(i)
			sc.Radius = vg.Points(3)
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		if s.Label != "" {
			p.Legend.Add(s.Label, thumbs...)
		}
	}
	wt, err := p.WriterTo(chartW, chartH, "png")
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Name, err)
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Name, err)
	}
	return b.Bytes(), nil
}

// WriteMarkdown writes rep as Markdown into dir/<base>.md: its summary
// and tables (WriteTable, with the tables as Markdown tables), then its
// charts if it has any (Charter), each saved as dir/<base>-<name>.png
// and shown by a relative link.
func WriteMarkdown(rep Report, dir, base string) error {
	var b bytes.Buffer
	if err := rep.WriteTable(markdown{&b}); err != nil {
		return err
	}
	if ch, ok := rep.(Charter); ok {
		for _, c := range ch.Charts() {
			png, err := c.PNG()
			if err != nil {
				return err
			}
			file := base + "-" + c.Name + ".png"
			if err := os.WriteFile(filepath.Join(dir, file), png, 0o640); err != nil {
				return err
			}
			fmt.Fprintf(&b, "\n![%s](%s)\n", c.Title, file)
		}
	}
	return os.WriteFile(filepath.Join(dir, base+".md"), b.Bytes(), 0o640)
}

// markdown marks the writer WriteTable is given: the tables it prints
// (newTable) come out as Markdown tables, and each of its lines ends
// with a hard line break, so that the summary lines stay lines.
type markdown struct{ w io.Writer }

func (m markdown) Write(p []byte) (int, error) {
	if _, err := m.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("  \n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
