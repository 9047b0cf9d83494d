//! Routing distribution: drives the relay's real routing code — the channel table's
//! priority + weighted round-robin, [`skein_relay::routing::order`] with a
//! [`skein_relay::routing::Stats`] fed by simulated outcomes, and the circuit breakers — over
//! simulated time, per strategy, and records each second which share of requests each channel
//! was tried first on. Three equal channels (a, b, c; same priority and weight) answer in 60,
//! 80 and 100 ms; at 40 s a slows to 400 ms, at 80 s b fails half its requests, at 120 s both
//! recover. Writes `target/bench/routing.json` and an SVG chart (`target/bench/routing.svg`),
//! and a PNG of it with `--png` (through `rsvg-convert`, from Debian's `librsvg2-bin`):
//!
//! ```sh
//! cargo run --release -p skein-bench --bin bench-routing -- --png docs/img/routing-distribution.png
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use skein_relay::breaker::Breakers;
use skein_relay::channels::{
    ChannelKind, ChannelRow, ChannelSecrets, ChannelStatus, ChannelTable, seal_secrets,
};
use skein_relay::routing::{self, Policy, Stats, Strategy};
use skein_relay::vault::Vault;

/// Simulates routing over time and plots which channel each strategy sends requests to first.
#[derive(Parser)]
struct Args {
    /// Requests per simulated second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Simulated seconds (the phases change at 40, 80 and 120 s).
    #[arg(long, default_value_t = 160)]
    seconds: u32,
    /// The share of requests that explore under the measured strategies, per cent (the
    /// relay's default is 5).
    #[arg(long, default_value_t = routing::DEFAULT_EXPLORE_PERCENT)]
    explore_percent: i64,
    /// Leave the circuit breakers out, to see the strategies' scores alone (the relay applies
    /// breakers after ordering, so by default they are in).
    #[arg(long)]
    no_breakers: bool,
    /// Where to write the series (JSON).
    #[arg(long, default_value = "target/bench/routing.json")]
    out: PathBuf,
    /// Where to write the chart (SVG).
    #[arg(long, default_value = "target/bench/routing.svg")]
    svg: PathBuf,
    /// Also render the chart as a PNG here, through `rsvg-convert`.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// The simulated channels.
const CHANNELS: [&str; 3] = ["a", "b", "c"];
/// When each phase starts (s) and what it is.
const PHASES: [(u32, &str); 4] = [
    (0, "a 60, b 80, c 100 ms"),
    (40, "a slows to 400 ms"),
    (80, "b fails 50 %"),
    (120, "both recover"),
];
/// The strategies plotted (`cost` and `balance` have no measured input: with equal costs and
/// no balances they order like `priority`).
const STRATEGIES: [Strategy; 4] = [
    Strategy::Priority,
    Strategy::Latency,
    Strategy::Errors,
    Strategy::Balanced,
];

/// Channel `id`'s latency (ms) and failure probability at simulated second `t`.
fn behaviour(id: &str, t: f64) -> (f64, f64) {
    let slow = (40.0..120.0).contains(&t);
    let failing = (80.0..120.0).contains(&t);
    match id {
        "a" if slow => (400.0, 0.0),
        "a" => (60.0, 0.0),
        "b" if failing => (80.0, 0.5),
        "b" => (80.0, 0.0),
        _ => (100.0, 0.0),
    }
}

/// A small deterministic generator (SplitMix64), so every run draws the same outcomes.
struct Draw(u64);

impl Draw {
    /// A uniform number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A latency around `ms` (±10 %), as upstreams jitter.
    fn jitter(&mut self, ms: f64) -> f64 {
        ms * (0.9 + 0.2 * self.next())
    }
}

/// An attempt's outcome, applied to the measurements when it completes.
struct Outcome {
    channel: usize,
    ok: bool,
    latency: Duration,
}

/// The channel table the relay would build from three enabled channels of one model.
fn table() -> anyhow::Result<ChannelTable> {
    let vault = Vault::new(&[7u8; 32]);
    let rows = CHANNELS
        .iter()
        .map(|id| {
            let secrets = ChannelSecrets {
                keys: vec![format!("sk-{id}")],
                headers: BTreeMap::new(),
            };
            Ok(ChannelRow {
                id: (*id).into(),
                kind: ChannelKind::OpenAi.into(),
                name: (*id).into(),
                base_url: "http://upstream.invalid".into(),
                secrets: seal_secrets(&vault, id, &secrets)
                    .map_err(|e| anyhow::anyhow!("sealing: {e}"))?,
                key_count: 1,
                models: r#"["m"]"#.into(),
                model_mapping: "{}".into(),
                groups_list: r#"["default"]"#.into(),
                priority: 0,
                weight: 1,
                timeout_secs: 60,
                header_names: "[]".into(),
                param_overrides: "{}".into(),
                cost_ratio_permille: 1000,
                balance: None,
                balance_currency: None,
                balance_at: None,
                low_balance_threshold: None,
                status: ChannelStatus::Enabled,
                status_reason: None,
                last_test_at: None,
                last_test_latency_ms: None,
                last_test_result: None,
                created_at: 0,
                updated_at: 0,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ChannelTable::build(&rows, &vault))
}

/// One strategy's run: per second, the share of requests each channel was tried first on,
/// and the share that failed over (the first channel tried failed).
struct Series {
    strategy: Strategy,
    shares: Vec<[f64; 3]>,
    failed_over: Vec<f64>,
}

/// Runs `strategy` over simulated time. Attempts complete after their latency: the
/// measurements (and breakers) learn an outcome only then, as in the relay, where hundreds of
/// requests are in flight while a slow channel's answers are still on their way.
fn simulate(strategy: Strategy, args: &Args) -> anyhow::Result<Series> {
    let table = table()?;
    let stats = Stats::default();
    let breakers = Breakers::default();
    let policy = Policy {
        strategy,
        explore_percent: args.explore_percent,
        sticky: false,
    };
    let start = Instant::now();
    let balances = HashMap::new();
    let mut draw = Draw(0x5eed);
    // Completions by time (µs from the start), then by order of sending.
    let mut pending: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut outcomes: HashMap<u64, Outcome> = HashMap::new();
    let mut sent = 0u64;
    let (mut shares, mut failed_over) = (Vec::new(), Vec::new());
    let index = |id: &str| CHANNELS.iter().position(|c| *c == id);
    for second in 0..args.seconds {
        let mut firsts = [0u32; 3];
        let mut failovers = 0u32;
        for i in 0..args.rate {
            let t = f64::from(second) + f64::from(i) / f64::from(args.rate);
            let at_us = (t * 1e6) as u64;
            let now = start + Duration::from_micros(at_us);
            // What has completed by now is known.
            while let Some(Reverse((done, id))) = pending.peek().copied()
                && done <= at_us
            {
                pending.pop();
                if let Some(o) = outcomes.remove(&id) {
                    let when = start + Duration::from_micros(done);
                    let channel = CHANNELS[o.channel];
                    if o.ok {
                        stats.success(channel, "m", o.latency, when);
                        if !args.no_breakers {
                            breakers.success(channel);
                        }
                    } else {
                        stats.failure(channel, "m", when);
                        if !args.no_breakers {
                            breakers.failure(channel, when);
                        }
                    }
                }
            }
            let (ordered, n) = table.numbered("default", "m");
            let (routed, _) =
                routing::order(policy, ordered, n, stats.of("m"), &balances, now, None);
            // As the pipeline does: breakers apply after ordering (a breaker's trial first).
            let tried: Vec<usize> = if args.no_breakers {
                routed.iter().filter_map(|c| index(&c.id)).collect()
            } else {
                let (kept, _) =
                    breakers.admit_in_order(routed.iter(), |c| c.id.as_str(), usize::MAX, now);
                kept.into_iter().filter_map(|c| index(&c.id)).collect()
            };
            let Some(&first) = tried.first() else {
                continue;
            };
            firsts[first] += 1;
            // The first channel, and on failure the next, each attempt in turn.
            let mut offset = 0.0;
            for (k, &channel) in tried.iter().enumerate() {
                let (ms, fails) = behaviour(CHANNELS[channel], t + offset / 1000.0);
                let ok = draw.next() >= fails;
                // A failure is noticed fast (an error status); an answer takes its latency.
                let took = if ok {
                    draw.jitter(ms)
                } else {
                    draw.jitter(5.0)
                };
                offset += took;
                let done = at_us + (offset * 1000.0) as u64;
                pending.push(Reverse((done, sent)));
                outcomes.insert(
                    sent,
                    Outcome {
                        channel,
                        ok,
                        latency: Duration::from_secs_f64(took / 1000.0),
                    },
                );
                sent += 1;
                if ok {
                    break;
                }
                if k == 0 {
                    failovers += 1;
                }
            }
        }
        let total = f64::from(firsts.iter().sum::<u32>().max(1));
        shares.push(firsts.map(|f| f64::from(f) / total));
        failed_over.push(f64::from(failovers) / f64::from(args.rate));
    }
    Ok(Series {
        strategy,
        shares,
        failed_over,
    })
}

/// Each channel's colour in the chart.
const COLOURS: [&str; 3] = ["#1f77b4", "#ff7f0e", "#2ca02c"];

/// The chart: one panel per strategy, each channel's share of first attempts per second,
/// with the phases marked.
fn svg(series: &[Series], args: &Args) -> String {
    let (width, panel_h, left, right, top) = (1000.0, 190.0, 70.0, 20.0, 88.0);
    let gap = 46.0;
    let height = top + series.len() as f64 * (panel_h + gap) + 30.0;
    let plot_w = width - left - right;
    let seconds = f64::from(args.seconds);
    let x = |t: f64| left + t / seconds * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="DejaVu Sans, sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" font-size="17" font-weight="bold" text-anchor="middle">Share of requests each channel is tried first on, per second ({} req/s, explore {} %{})</text>"#,
        width / 2.0,
        args.rate,
        args.explore_percent,
        if args.no_breakers {
            ", no breakers"
        } else {
            ", breakers on"
        }
    );
    // Legend.
    for (i, id) in CHANNELS.iter().enumerate() {
        let lx = left + 10.0 + i as f64 * 110.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="46" x2="{}" y2="46" stroke="{}" stroke-width="3"/><text x="{}" y="51">channel {id}</text>"#,
            lx + 26.0,
            COLOURS[i],
            lx + 32.0
        );
    }
    let lx = left + 10.0 + 3.0 * 110.0;
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="46" x2="{}" y2="46" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{}" y="51">failed over (first attempt failed)</text>"##,
        lx + 26.0,
        lx + 32.0
    );
    for (p, one) in series.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + gap);
        let y = |share: f64| y0 + panel_h - share * panel_h;
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{}" font-weight="bold">{}</text>
<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>"##,
            y0 - 8.0,
            one.strategy.as_str()
        );
        // Phase markers and their names.
        for (at, name) in PHASES {
            let px = x(f64::from(at));
            if at > 0 {
                let _ = writeln!(
                    s,
                    r##"<line x1="{px}" y1="{y0}" x2="{px}" y2="{}" stroke="#666" stroke-dasharray="5 4"/>"##,
                    y0 + panel_h
                );
            }
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="11" fill="#444">{name}</text>"##,
                px + 4.0,
                y0 + 13.0
            );
        }
        // The y axis: 0, 50 and 100 %.
        for share in [0.0, 0.5, 1.0] {
            let gy = y(share);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{gy}" x2="{}" y2="{gy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end" font-size="11">{:.0} %</text>"##,
                left + plot_w,
                left - 6.0,
                gy + 4.0,
                share * 100.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle" font-size="12">share</text>"#,
            left - 44.0,
            y0 + panel_h / 2.0
        );
        // The x axis: every 20 s.
        for t in (0..=args.seconds).step_by(20) {
            let tx = x(f64::from(t));
            let _ = writeln!(
                s,
                r##"<line x1="{tx}" y1="{}" x2="{tx}" y2="{}" stroke="#999"/><text x="{tx}" y="{}" text-anchor="middle" font-size="11">{t}</text>"##,
                y0 + panel_h,
                y0 + panel_h + 4.0,
                y0 + panel_h + 16.0
            );
        }
        // One line per channel, at each second's middle.
        for (c, colour) in COLOURS.iter().enumerate() {
            let points: Vec<String> = one
                .shares
                .iter()
                .enumerate()
                .map(|(t, sh)| format!("{:.1},{:.1}", x(t as f64 + 0.5), y(sh[c])))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
        }
        let points: Vec<String> = one
            .failed_over
            .iter()
            .enumerate()
            .map(|(t, f)| format!("{:.1},{:.1}", x(t as f64 + 0.5), y(*f)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3" points="{}"/>"##,
            points.join(" ")
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">simulated time (s)</text>
</svg>"#,
        left + plot_w / 2.0,
        height - 8.0
    );
    s
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let series = STRATEGIES
        .iter()
        .map(|s| simulate(*s, &args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let phase_mean = |one: &Series, from: u32, to: u32| -> [f64; 3] {
        let slice = &one.shares[from as usize..(to.min(args.seconds)) as usize];
        let n = slice.len().max(1) as f64;
        [0, 1, 2].map(|c| slice.iter().map(|s| s[c]).sum::<f64>() / n)
    };
    println!("share of first attempts, mean per phase (a / b / c):");
    for one in &series {
        let bounds: Vec<u32> = PHASES.iter().map(|p| p.0).chain([args.seconds]).collect();
        let parts: Vec<String> = bounds
            .windows(2)
            .map(|w| {
                let m = phase_mean(one, w[0], w[1]);
                format!(
                    "{:>3.0}/{:>3.0}/{:>3.0} %",
                    m[0] * 100.0,
                    m[1] * 100.0,
                    m[2] * 100.0
                )
            })
            .collect();
        println!("{:<9} {}", one.strategy.as_str(), parts.join("  |  "));
    }
    let results = json!({
        "benchmark": "routing",
        "rate": args.rate,
        "seconds": args.seconds,
        "explore_percent": args.explore_percent,
        "breakers": !args.no_breakers,
        "channels": CHANNELS,
        "phases": PHASES.iter().map(|(at, name)| json!({"from_s": at, "what": name})).collect::<Vec<_>>(),
        "strategies": series.iter().map(|one| json!({
            "strategy": one.strategy.as_str(),
            "first_share": one.shares.iter().map(|s| json!({"a": s[0], "b": s[1], "c": s[2]})).collect::<Vec<_>>(),
            "failed_over_share": one.failed_over,
        })).collect::<Vec<_>>(),
    });
    for path in [&args.out, &args.svg] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    std::fs::write(&args.svg, svg(&series, &args))?;
    println!("wrote {} and {}", args.out.display(), args.svg.display());
    if let Some(png) = &args.png {
        let status = std::process::Command::new("rsvg-convert")
            .arg("--format=png")
            .arg("--output")
            .arg(png)
            .arg(&args.svg)
            .status()
            .context("rsvg-convert (apt-get install librsvg2-bin) is needed for --png")?;
        anyhow::ensure!(status.success(), "rsvg-convert failed: {status}");
        println!("wrote {}", png.display());
    }
    Ok(())
}
