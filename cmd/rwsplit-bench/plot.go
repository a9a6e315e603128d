package main

import (
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colors by configuration, the same in every plot.
var palette = map[string]color.Color{
	"plain GORM":            color.RGBA{R: 120, G: 120, B: 120, A: 255},
	"dbresolver":            color.RGBA{R: 214, G: 39, B: 40, A: 255},
	"rwsplit":               color.RGBA{R: 31, G: 119, B: 180, A: 255},
	"rwsplit P2C":           color.RGBA{R: 31, G: 119, B: 180, A: 255},
	"rwsplit LeastInFlight": color.RGBA{R: 44, G: 160, B: 44, A: 255},
	"rwsplit RoundRobin":    color.RGBA{R: 148, G: 103, B: 189, A: 255},
	"pgpool-II":             color.RGBA{R: 255, G: 127, B: 14, A: 255},
	"ideal":                 color.RGBA{A: 255},
}

func colorOf(name string, i int) color.Color {
	if c, ok := palette[name]; ok {
		return c
	}
	return plotColors[i%len(plotColors)]
}

var plotColors = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func save(p *plot.Plot, path string) error {
	return p.Save(20*vg.Centimeter, 12*vg.Centimeter, path)
}

// plotScaling draws reads/s against N per configuration, with the ideal.
func plotScaling(path, title string, names []string, series map[string][]float64, ideal []float64) error {
	p := newPlot(title, "replicas (N)", "reads/s")
	xy := func(ys []float64) plotter.XYs {
		pts := make(plotter.XYs, len(ys))
		for i, y := range ys {
			pts[i] = plotter.XY{X: float64(i + 1), Y: y}
		}
		return pts
	}
	l, err := plotter.NewLine(xy(ideal))
	if err != nil {
		return err
	}
	l.Color = palette["ideal"]
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add("ideal: N × one server alone", l)
	for i, name := range names {
		l, pts, err := plotter.NewLinePoints(xy(series[name]))
		if err != nil {
			return err
		}
		l.Color, pts.Color = colorOf(name, i), colorOf(name, i)
		pts.Shape = draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(name, l, pts)
	}
	top := 0.0
	for _, ys := range append([][]float64{ideal}, mapValues(series)...) {
		for _, y := range ys {
			top = math.Max(top, y)
		}
	}
	p.X.Min, p.Y.Min, p.Y.Max = 0.5, 0, top*1.35 // headroom for the legend
	p.X.Max = float64(len(ideal)) + 0.5
	p.X.Tick.Marker = plot.ConstantTicks(intTicks(len(ideal)))
	return save(p, path)
}

func intTicks(n int) []plot.Tick {
	var t []plot.Tick
	for i := 1; i <= n; i++ {
		t = append(t, plot.Tick{Value: float64(i), Label: fmt.Sprint(i)})
	}
	return t
}

// tsSeries is a named series of points over time.
type tsSeries struct {
	name   string
	pts    plotter.XYs
	points bool // scatter instead of a line
}

// plotTimeline draws series over time, with the fault window shaded.
func plotTimeline(path, title, ylabel string, series []tsSeries, faultFrom, faultTo float64, logY bool) error {
	p := newPlot(title, "seconds (fault from the first to the second dashed line)", ylabel)
	maxY, minY := 0.0, math.Inf(1)
	for _, s := range series {
		for _, pt := range s.pts {
			maxY = max(maxY, pt.Y)
			if pt.Y > 0 {
				minY = min(minY, pt.Y)
			}
		}
	}
	maxY = math.Max(maxY, 1)
	lo, hi := 0.0, maxY*1.4 // headroom for the legend
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		lo, hi = math.Max(minY/2, 0.01), maxY*30
		if math.IsInf(minY, 1) {
			lo = 0.01
		}
	}
	p.Y.Min, p.Y.Max = lo, hi
	for i, s := range series {
		if len(s.pts) == 0 {
			continue
		}
		c := colorOf(s.name, i)
		if s.points {
			sc, err := plotter.NewScatter(s.pts)
			if err != nil {
				return err
			}
			sc.Color = c
			sc.Radius = vg.Points(1.2)
			sc.Shape = draw.CircleGlyph{}
			p.Add(sc)
			p.Legend.Add(s.name, sc)
		} else {
			l, err := plotter.NewLine(s.pts)
			if err != nil {
				return err
			}
			l.Color = c
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(s.name, l)
		}
	}
	for _, x := range []float64{faultFrom, faultTo} {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		l.Color = color.Gray{Y: 100}
		p.Add(l)
	}
	p.Y.Min, p.Y.Max = lo, hi
	return save(p, path)
}

// plotCDF draws the distribution of latencies per series.
func plotCDF(path, title string, names []string, lat map[string][]time.Duration) error {
	p := newPlot(title, "read latency (ms, log scale)", "share of reads at or below")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Left = false
	p.Legend.Top = false
	for i, name := range names {
		s := sortedDurations(lat[name])
		if len(s) == 0 {
			continue
		}
		step := max(1, len(s)/2000)
		var pts plotter.XYs
		for k := 0; k < len(s); k += step {
			pts = append(pts, plotter.XY{X: math.Max(float64(s[k])/1e6, 1e-3), Y: float64(k+1) / float64(len(s))})
		}
		pts = append(pts, plotter.XY{X: math.Max(float64(s[len(s)-1])/1e6, 1e-3), Y: 1})
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = colorOf(name, i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(name, l)
	}
	p.Y.Min, p.Y.Max = 0, 1
	return save(p, path)
}

// plotBars draws one bar per label.
func plotBars(path, title, ylabel string, labels []string, values []float64) error {
	p := newPlot(title, "", ylabel)
	p.Legend.Top = false
	bars, err := plotter.NewBarChart(plotter.Values(values), vg.Points(40))
	if err != nil {
		return err
	}
	bars.Color = palette["rwsplit"]
	bars.LineStyle.Width = 0
	p.Add(bars)
	p.NominalX(labels...)
	p.Y.Min = 0
	return save(p, path)
}

func mapValues(m map[string][]float64) [][]float64 {
	var out [][]float64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
