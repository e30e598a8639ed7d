//! The throughput-against-workers chart, drawn by the bench itself (SVG, plotters).

use std::path::Path;

use anyhow::Context as _;
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
