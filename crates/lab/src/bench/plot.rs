//! The charts the bench draws itself (SVG, plotters): throughput against workers, and the
//! scaling part against the backlog.

use std::path::Path;

use anyhow::Context as _;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::ServersReport;

const COLOURS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), GREEN, MAGENTA];

/// Draws tasks/s against workers for each server count, with each ceiling bound drawn in.
pub fn throughput_svg(runs: &[ServersReport], path: &Path) -> anyhow::Result<()> {
    let max_workers = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.workers))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let bound = |r: &ServersReport| r.ceiling.writes_per_s / f64::from(r.protocol_writes_per_task.max(1));
    let top = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.tasks_per_s).chain([bound(r)]))
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("taskfarm: no-op tasks/s vs workers", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0f64..max_workers + 1.0, 0.0f64..top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("workers")
        .y_desc("tasks/s")
        .x_labels(max_workers as usize + 2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = format!("{} server{}", r.servers, if r.servers == 1 { "" } else { "s" });
        let pts: Vec<(f64, f64)> = r.points.iter().map(|p| (p.workers as f64, p.tasks_per_s)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!("{name}: measured"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let b = bound(r);
        let dashes: Vec<_> = dashed(0.0, max_workers + 1.0, 40)
            .into_iter()
            .map(|(a, z)| PathElement::new(vec![(a, b), (z, b)], colour.stroke_width(1)))
            .collect();
        chart
            .draw_series(dashes)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!(
                "{name}: ceiling / {} writes per task",
                r.protocol_writes_per_task
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y), (x + 12, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `n` dash segments evenly spaced between `from` and `to`.
fn dashed(from: f64, to: f64, n: usize) -> Vec<(f64, f64)> {
    let step = (to - from) / n as f64;
    (0..n)
        .map(|i| {
            let s = from + step * i as f64;
            (s, s + step * 0.6)
        })
        .collect()
}

/// The scaling part against the backlog (log axis): throughput, failover latency and the
/// masters' memory, each with its issue 15 target drawn in (dashed).
pub fn scaling_svg(runs: &[ServersReport], path: &Path) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let runs: Vec<&ServersReport> = runs.iter().filter(|r| !r.scaling.rows.is_empty()).collect();
    let sizes = || runs.iter().flat_map(|r| r.scaling.rows.iter().map(|x| x.queued as f64));
    let x_lo = sizes().fold(f64::INFINITY, f64::min).min(100.0) / 1.6;
    let x_hi = sizes().fold(1.0, f64::max) * 1.6;
    let root = SVGBackend::new(path, (1500, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(
            "taskfarm: scaling with the backlog (4 workers, no-op tasks)",
            ("sans-serif", 22),
        )
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 3));
    let name = |r: &ServersReport| format!("{} server{}", r.servers, if r.servers == 1 { "" } else { "s" });

    // 1. Throughput, with 90 % of the smallest backlog's.
    let top = runs
        .iter()
        .flat_map(|r| r.scaling.rows.iter().map(|x| x.tasks_per_s))
        .fold(1.0f64, f64::max)
        * 1.25;
    let mut chart = panel(&panels[0], "drain throughput", "tasks/s", (x_lo, x_hi), 0.0f64..top)?;
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> = r
            .scaling
            .rows
            .iter()
            .map(|x| (x.queued as f64, x.tasks_per_s))
            .collect();
        series(&mut chart, &pts, colour, format!("{}: tasks/s", name(r)))?;
        let goal = r.scaling.rows.first().map_or(0.0, |b| b.tasks_per_s * 0.9);
        dashes(
            &mut chart,
            x_lo,
            x_hi,
            |_| goal,
            colour,
            format!("{}: 90 % of the base", name(r)),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;

    // 2. Failover: SIGTERM p50 and max, SIGKILL max, against their limits (log axis).
    let values = || {
        runs.iter().flat_map(|r| {
            r.scaling
                .rows
                .iter()
                .flat_map(|x| [x.sigterm_ms.p50, x.sigterm_ms.max, x.sigkill_ms.max])
                .chain([r.scaling.session_timeout_ms as f64 + 500.0])
        })
    };
    let y_lo = values().filter(|&v| v > 0.0).fold(50.0, f64::min) / 2.0;
    let y_hi = values().fold(100.0, f64::max) * 2.0;
    let mut chart = panel(
        &panels[1],
        "leader kill -> new leader's first assignment",
        "ms",
        (x_lo, x_hi),
        (y_lo.max(0.1)..y_hi).log_scale(),
    )?;
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let rows = &r.scaling.rows;
        let pick = |f: fn(&super::report::ScalingRow) -> f64| -> Vec<(f64, f64)> {
            rows.iter()
                .map(|x| (x.queued as f64, f(x)))
                .filter(|p| p.1 > 0.0)
                .collect()
        };
        series(
            &mut chart,
            &pick(|x| x.sigterm_ms.p50),
            colour,
            format!("{}: SIGTERM p50", name(r)),
        )?;
        let max = pick(|x| x.sigterm_ms.max);
        chart
            .draw_series(max.iter().map(|&p| TriangleMarker::new(p, 6, colour.filled())))
            .map_err(|e| err(&e))?
            .label(format!("{}: SIGTERM max", name(r)))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, colour.filled()));
        let kill_colour = COLOURS[(i + 2) % COLOURS.len()];
        series(
            &mut chart,
            &pick(|x| x.sigkill_ms.max),
            kill_colour,
            format!("{}: SIGKILL max", name(r)),
        )?;
        let limit = r.scaling.session_timeout_ms as f64 + 500.0;
        dashes(
            &mut chart,
            x_lo,
            x_hi,
            |_| limit,
            kill_colour,
            "SIGKILL goal: session timeout + 0.5 s".into(),
        )?;
    }
    dashes(
        &mut chart,
        x_lo,
        x_hi,
        |_| 50.0,
        BLACK,
        "SIGTERM goal: p50 < 50 ms".into(),
    )?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;

    // 3. The masters' resident memory, with base + 300 bytes per queued task.
    let top = runs
        .iter()
        .flat_map(|r| {
            r.scaling
                .rows
                .iter()
                .flat_map(|x| [x.leader_rss_kib, x.standby_rss_kib])
        })
        .fold(1, u64::max) as f64
        / 1024.0
        * 1.25;
    let mut chart = panel(&panels[2], "masters' resident memory", "MiB", (x_lo, x_hi), 0.0f64..top)?;
    for (i, r) in runs.iter().enumerate() {
        let rows = &r.scaling.rows;
        let mib = |k: u64| k as f64 / 1024.0;
        let leader: Vec<(f64, f64)> = rows.iter().map(|x| (x.queued as f64, mib(x.leader_rss_kib))).collect();
        let standby: Vec<(f64, f64)> = rows.iter().map(|x| (x.queued as f64, mib(x.standby_rss_kib))).collect();
        series(
            &mut chart,
            &leader,
            COLOURS[i % COLOURS.len()],
            format!("{}: leader", name(r)),
        )?;
        series(
            &mut chart,
            &standby,
            COLOURS[(i + 1) % COLOURS.len()],
            format!("{}: standby", name(r)),
        )?;
        if let Some(base) = rows.first() {
            let (b0, m0) = (base.queued as f64, mib(base.leader_rss_kib));
            let per = super::report::SCALING_BYTES_PER_TASK / 1024.0 / 1024.0;
            dashes(
                &mut chart,
                x_lo,
                x_hi,
                move |x| m0 + per * (x - b0).max(0.0),
                BLACK,
                "goal: leader base + 300 bytes per queued task".into(),
            )?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()
        .map_err(|e| err(&e))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

type LogChart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, Y>>;

/// One panel of the scaling chart: tasks queued on a log axis from `x.0` to `x.1`, against `y`.
fn panel<'a, 'b, Y>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_desc: &str,
    x: (f64, f64),
    y: Y,
) -> anyhow::Result<LogChart<'a, 'b, Y::CoordDescType>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x.0..x.1).log_scale(), y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("tasks queued")
        .y_desc(y_desc)
        .x_label_formatter(&queued_label)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(chart)
}

/// `1k`, `10k`, `100k` for the tasks queued.
fn queued_label(x: &f64) -> String {
    if *x >= 1_000.0 {
        format!("{:.0}k", x / 1_000.0)
    } else {
        format!("{x:.0}")
    }
}

/// A line with a dot at each point, in the legend as `label`.
fn series<Y>(chart: &mut LogChart<'_, '_, Y>, pts: &[(f64, f64)], colour: RGBColor, label: String) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(pts.to_vec(), colour.stroke_width(2)))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// `y(x)` drawn dashed across a log axis from `lo` to `hi`.
fn dashes<Y>(
    chart: &mut LogChart<'_, '_, Y>,
    lo: f64,
    hi: f64,
    y: impl Fn(f64) -> f64,
    colour: RGBColor,
    label: String,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    let (a, b) = (lo.ln(), hi.ln());
    let segments: Vec<_> = dashed(a, b, 48)
        .into_iter()
        .map(|(s, e)| {
            let (s, e) = (s.exp(), e.exp());
            PathElement::new(vec![(s, y(s)), (e, y(e))], colour.stroke_width(1))
        })
        .collect();
    chart
        .draw_series(segments)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y), (x + 12, y), (x + 20, y)], colour));
    Ok(())
}

fn legend<'a, 'b: 'a, Y>(chart: &mut LogChart<'a, 'b, Y>, position: SeriesLabelPosition) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))
}
