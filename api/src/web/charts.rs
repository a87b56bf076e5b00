//! Charts drawn on the server as SVG: the geometry is computed here, the markup is the
//! `chart_*.html` templates' (so every label is escaped like any other text of a page).
//!
//! Why not a charting library in the browser: pages carry no script (the Content-Security-Policy
//! allows none inline, and nothing needs one), a chart is then part of the HTML a test or a
//! screen reader reads, and it costs no download. Colours are classes of the stylesheet: the
//! policy refuses `style` attributes.
//!
//! Each chart is drawn in a fixed `viewBox` about as wide as a phone (360 units) and scaled to
//! its box by the stylesheet, so its text is legible at 375 px and grows on a desktop.

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Width of every chart's `viewBox`.
pub const WIDTH: f64 = 360.0;

/// A value axis from 0 to `max`, a "round" number at or above the largest value, with a tick
/// at 0, half and `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub max: f64,
}

impl Scale {
    /// The smallest of 1, 2, 2.5, 5 × a power of ten that is at least `largest` (1 for
    /// nothing to show).
    pub fn to_fit(largest: f64) -> Self {
        if largest.is_nan() || largest <= 0.0 {
            return Self { max: 1.0 };
        }
        let power = 10f64.powf(largest.log10().floor());
        let max = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .map(|m| m * power)
            .find(|m| *m >= largest)
            .unwrap_or(10.0 * power);
        Self { max }
    }

    /// `value` as a fraction of the axis (0 to 1).
    pub fn fraction(&self, value: f64) -> f64 {
        (value / self.max).clamp(0.0, 1.0)
    }

    /// The tick values, lowest first.
    pub fn ticks(&self) -> [f64; 3] {
        [0.0, self.max / 2.0, self.max]
    }
}

/// A number as a short axis label: `950`, `1.5k`, `2M`.
pub fn compact(value: f64) -> String {
    let (scaled, unit) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "bn"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = format!("{scaled:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{unit}")
}

fn coordinate(v: f64) -> String {
    format!("{v:.1}")
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or_default()
}

/// A horizontal grid line with its value, at `y`.
#[derive(Debug, Clone)]
pub struct Tick {
    pub y: String,
    pub label: String,
}

/// One bar: its rectangle, the label under (or beside) it, and its value for the tooltip and
/// the text beside it.
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub label: String,
    pub label_x: String,
    pub label_y: String,
    pub value: String,
    pub value_x: String,
    pub value_y: String,
}

/// Vertical bars over a labelled baseline (spend by month).
#[derive(Debug, Clone)]
pub struct ColumnChart {
    /// Unique on the page: the `id` the SVG's title and description are referred to by.
    pub id: String,
    pub title: String,
    pub description: String,
    pub height: String,
    pub baseline: String,
    pub plot_left: String,
    pub plot_right: String,
    pub ticks: Vec<Tick>,
    pub bars: Vec<Bar>,
}

/// Where the plot sits in a column or line chart's `viewBox`.
const PLOT_LEFT: f64 = 44.0;
const PLOT_RIGHT: f64 = WIDTH - 8.0;
const PLOT_TOP: f64 = 12.0;
const PLOT_BOTTOM: f64 = 170.0;
const CHART_HEIGHT: f64 = 196.0;

fn ticks(scale: &Scale) -> Vec<Tick> {
    scale
        .ticks()
        .into_iter()
        .map(|v| Tick {
            y: coordinate(PLOT_BOTTOM - scale.fraction(v) * (PLOT_BOTTOM - PLOT_TOP)),
            label: compact(v),
        })
        .collect()
}

impl ColumnChart {
    /// One column per `(label, value, shown value)`, in order.
    pub fn new(id: &str, title: &str, description: &str, columns: &[(String, Decimal, String)]) -> Self {
        let largest = columns.iter().map(|(_, v, _)| to_f64(*v)).fold(0.0, f64::max);
        let scale = Scale::to_fit(largest);
        let slot = (PLOT_RIGHT - PLOT_LEFT) / columns.len().max(1) as f64;
        let width = (slot * 0.7).max(1.0);
        let bars = columns
            .iter()
            .enumerate()
            .map(|(i, (label, value, shown))| {
                let height = scale.fraction(to_f64(*value)) * (PLOT_BOTTOM - PLOT_TOP);
                let x = PLOT_LEFT + slot * i as f64 + (slot - width) / 2.0;
                Bar {
                    x: coordinate(x),
                    y: coordinate(PLOT_BOTTOM - height),
                    width: coordinate(width),
                    height: coordinate(height),
                    label: label.clone(),
                    label_x: coordinate(x + width / 2.0),
                    label_y: coordinate(PLOT_BOTTOM + 14.0),
                    value: shown.clone(),
                    value_x: coordinate(x + width / 2.0),
                    value_y: coordinate(PLOT_BOTTOM - height - 3.0),
                }
            })
            .collect();
        Self {
            id: id.into(),
            title: title.into(),
            description: description.into(),
            height: coordinate(CHART_HEIGHT),
            baseline: coordinate(PLOT_BOTTOM),
            plot_left: coordinate(PLOT_LEFT),
            plot_right: coordinate(PLOT_RIGHT),
            ticks: ticks(&scale),
            bars,
        }
    }
}

/// Horizontal bars with their labels on the left (requisitions by status): long labels stay
/// legible on a narrow screen.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub id: String,
    pub title: String,
    pub description: String,
    pub height: String,
    pub axis_x: String,
    pub bars: Vec<Bar>,
}

const ROW: f64 = 26.0;
const LABEL_WIDTH: f64 = 128.0;
const VALUE_ROOM: f64 = 48.0;

impl BarChart {
    /// One bar per `(label, value, shown value)`, top to bottom.
    pub fn new(id: &str, title: &str, description: &str, rows: &[(String, Decimal, String)]) -> Self {
        let largest = rows.iter().map(|(_, v, _)| to_f64(*v)).fold(0.0, f64::max);
        let scale = Scale { max: if largest > 0.0 { largest } else { 1.0 } };
        let room = WIDTH - LABEL_WIDTH - VALUE_ROOM;
        let bars = rows
            .iter()
            .enumerate()
            .map(|(i, (label, value, shown))| {
                let y = 4.0 + ROW * i as f64;
                let width = scale.fraction(to_f64(*value)) * room;
                Bar {
                    x: coordinate(LABEL_WIDTH),
                    y: coordinate(y),
                    width: coordinate(width),
                    height: coordinate(ROW - 8.0),
                    label: label.clone(),
                    label_x: coordinate(LABEL_WIDTH - 6.0),
                    label_y: coordinate(y + ROW / 2.0),
                    value: shown.clone(),
                    value_x: coordinate(LABEL_WIDTH + width + 4.0),
                    value_y: coordinate(y + ROW / 2.0),
                }
            })
            .collect();
        Self {
            id: id.into(),
            title: title.into(),
            description: description.into(),
            height: coordinate(8.0 + ROW * rows.len() as f64),
            axis_x: coordinate(LABEL_WIDTH),
            bars,
        }
    }
}

/// A labelled horizontal reference line (a fund's float, its reorder level).
#[derive(Debug, Clone)]
pub struct Level {
    pub y: String,
    pub label: String,
    /// The stylesheet class: `float` or `reorder`.
    pub class: &'static str,
}

/// A series over days against reference levels (a fund's balance against its float).
#[derive(Debug, Clone)]
pub struct LineChart {
    pub id: String,
    pub title: String,
    /// Under the chart (default: the title).
    pub caption: String,
    pub description: String,
    pub height: String,
    pub baseline: String,
    pub plot_left: String,
    pub plot_right: String,
    pub ticks: Vec<Tick>,
    pub levels: Vec<Level>,
    /// `x,y` pairs of the `polyline`, in day order (days without a value are left out: a fund
    /// not yet opened).
    pub points: String,
    /// The last point, marked with a dot.
    pub last: Option<(String, String)>,
    pub first_day: String,
    pub last_day: String,
}

impl LineChart {
    /// `points` oldest first; `levels` as `(value, label, class)`.
    pub fn new(
        id: &str,
        title: &str,
        description: &str,
        points: &[(NaiveDate, Option<Decimal>)],
        levels: &[(Decimal, String, &'static str)],
    ) -> Self {
        let largest = points
            .iter()
            .filter_map(|(_, v)| v.map(to_f64))
            .chain(levels.iter().map(|(v, _, _)| to_f64(*v)))
            .fold(0.0, f64::max);
        let scale = Scale::to_fit(largest);
        let y = |v: Decimal| PLOT_BOTTOM - scale.fraction(to_f64(v)) * (PLOT_BOTTOM - PLOT_TOP);
        let step = (PLOT_RIGHT - PLOT_LEFT) / (points.len().max(2) - 1) as f64;
        let drawn: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.map(|v| (PLOT_LEFT + step * i as f64, y(v))))
            .collect();
        let day = |d: Option<&(NaiveDate, Option<Decimal>)>| d.map(|(d, _)| d.format("%-d %b").to_string());
        Self {
            id: id.into(),
            title: title.into(),
            caption: title.into(),
            description: description.into(),
            height: coordinate(CHART_HEIGHT),
            baseline: coordinate(PLOT_BOTTOM),
            plot_left: coordinate(PLOT_LEFT),
            plot_right: coordinate(PLOT_RIGHT),
            ticks: ticks(&scale),
            levels: levels
                .iter()
                .map(|(v, label, class)| Level { y: coordinate(y(*v)), label: label.clone(), class })
                .collect(),
            points: drawn
                .iter()
                .map(|(x, y)| format!("{},{}", coordinate(*x), coordinate(*y)))
                .collect::<Vec<_>>()
                .join(" "),
            last: drawn.last().map(|(x, y)| (coordinate(*x), coordinate(*y))),
            first_day: day(points.first()).unwrap_or_default(),
            last_day: day(points.last()).unwrap_or_default(),
        }
    }

    /// The same chart with `caption` under it.
    pub fn with_caption(self, caption: String) -> Self {
        Self { caption, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_at_a_round_number_at_or_above_the_largest_value() {
        for (largest, max) in
            [(0.0, 1.0), (7.0, 10.0), (1_234.0, 2_000.0), (2_100.0, 2_500.0), (50_000.0, 50_000.0)]
        {
            assert_eq!(Scale::to_fit(largest).max, max, "{largest}");
        }
        assert_eq!(Scale::to_fit(f64::NAN).max, 1.0);
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(1_500.0), "1.5k");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(0.0), "0");
    }

    #[test]
    fn columns_grow_with_their_value_from_one_baseline() {
        let columns = [
            ("Jan".to_string(), Decimal::new(500, 0), "500".to_string()),
            ("Feb".to_string(), Decimal::new(1000, 0), "1,000".to_string()),
            ("Mar".to_string(), Decimal::ZERO, "0".to_string()),
        ];
        let chart = ColumnChart::new("spend", "Spend", "", &columns);
        let heights: Vec<f64> = chart.bars.iter().map(|b| b.height.parse().unwrap()).collect();
        assert_eq!(heights[2], 0.0);
        assert!((heights[1] - 2.0 * heights[0]).abs() < 0.2, "{heights:?}");
        for bar in &chart.bars {
            let bottom: f64 = bar.y.parse::<f64>().unwrap() + bar.height.parse::<f64>().unwrap();
            assert!((bottom - PLOT_BOTTOM).abs() < 0.2, "{bar:?}");
            assert!(bar.x.parse::<f64>().unwrap() >= PLOT_LEFT);
        }
    }

    #[test]
    fn a_line_skips_the_days_before_the_fund_opened_and_draws_its_levels() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let points =
            [(day(1), None), (day(2), Some(Decimal::new(800, 0))), (day(3), Some(Decimal::new(400, 0)))];
        let levels = [(Decimal::new(1000, 0), "Float".to_string(), "float")];
        let chart = LineChart::new("fund", "Fund", "", &points, &levels);
        assert_eq!(chart.points.split(' ').count(), 2, "{}", chart.points);
        assert_eq!(chart.levels[0].y, coordinate(PLOT_TOP), "the float is the top of the axis");
        assert_eq!((chart.first_day.as_str(), chart.last_day.as_str()), ("1 Mar", "3 Mar"));
        assert!(chart.last.is_some());
    }
}
