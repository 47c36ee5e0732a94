//! The run's outputs: what was asked for ([`Outputs`], checked by [`super::args`] before
//! the model loads), then the sinks built from it once the model is loaded ([`Sinks`]),
//! each under the error policy of its kind ([`OnError`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Result};

use super::flags::Format;
use super::{is_broken_pipe, report_error};
use crate::error::one_line;
use crate::output::delimited::{Columns, Delimited};
use crate::output::heatmap::{HeatmapOptions, ImageFormat};
use crate::output::images::{Images, Target};
use crate::output::json::Json;
use crate::output::jsonl::{Finished, Jsonl};
use crate::output::report::Html;
use crate::output::summary::{SummaryFile, SummaryFormat};
use crate::output::summary_plot::SummaryPlot;
use crate::output::table::Table;
use crate::output::Stat;
use crate::output::{RunContext, Sink};
use crate::report::Report;

/// The outputs asked for: checked, not built ([`Sinks::build`] builds them once the model
/// is loaded).
#[derive(Debug, Clone)]
pub(crate) struct Outputs {
    /// The stdout format.
    pub format: Format,
    /// The statistics the table shows after each token.
    pub table_stats: Vec<Stat>,
    /// `--layer-step`: the table shows every N-th layer and the output row.
    pub layer_step: usize,
    /// JSON as one object rather than an array (one `--prompt`).
    pub single_json: bool,
    /// Whether the run has several prompts (the table heads each report with its prompt).
    pub many: bool,
    /// Reports per prompt: 2 under `--compare-lenses` (the logit lens's, then the tuned
    /// lens's), else 1.
    pub lenses: usize,
    /// `--allow-nonfinite`: cells may be non-finite (CSV/TSV get a `nonfinite` column).
    pub nonfinite: bool,
    /// The files written per prompt, if any.
    pub files: Option<Files>,
    /// `--summary`: the file and its format.
    pub summary: Option<(PathBuf, SummaryFormat)>,
    /// `--summary-plot`: the file and its format.
    pub summary_plot: Option<(PathBuf, ImageFormat)>,
    /// Say on stderr when a prompt's positions do not fit in one image (not `--quiet`).
    pub warn: bool,
    /// `--output`: the file the stdout format goes to instead.
    pub output: Option<PathBuf>,
}

/// The files written per prompt: heatmaps or the HTML report, never both.
#[derive(Debug, Clone)]
pub(crate) enum Files {
    /// Heatmaps (`--out FILE.png|svg`, `--out-dir DIR`) in `format`, drawn with `options`.
    Images {
        target: Target,
        format: ImageFormat,
        options: HeatmapOptions,
    },
    /// The HTML report (`--out FILE.html`, `--out-dir DIR --image-format html`).
    Report(Target),
}

/// What an error of a sink does to the run; each kind of sink has one ([`Sinks::build`]).
///
/// Whatever the policy, an error in [`Sink::begin`] ends the run (nothing has been written
/// yet), and a [`Sink::check`] error fails the prompt before anything of it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// The run ends at once: one error line and exit code 1; the sinks after it are not
    /// finished. stdout (its `Stdout` wrapper words its errors; a closed stdout ends the
    /// run quietly with exit code 0, or is dropped while files are being written),
    /// `--summary` and `--summary-plot`.
    EndRun,
    /// A report's error fails its prompt: one line naming the prompt, exit code 1 at the
    /// end; the other sinks still get the prompt's reports and the run goes on (unless
    /// `--fail-fast`). At the finish, where there is no prompt (the one `--out` report,
    /// written last), one error line and exit code 1, and the other sinks still finish.
    /// Heatmaps and the HTML report.
    FailPrompt,
}

/// The run's sinks, in the order each report reaches them: stdout, `--summary`,
/// `--summary-plot`, then the heatmaps or the HTML report (finished last: the one `--out`
/// report holds every prompt).
pub(crate) struct Sinks(Vec<(OnError, Box<dyn Sink>)>);

impl Sinks {
    /// The sinks of `outputs`, stdout's printing to `out`; `top_k` is the run's K (the
    /// CSV/TSV top-k columns).
    pub(crate) fn build(outputs: &Outputs, top_k: usize, out: impl Write + 'static) -> Self {
        let stdout = Stdout {
            printer: Some(printer(outputs, top_k, out)),
            files: outputs.files.is_some(),
            file: outputs.output.clone(),
        };
        let mut sinks: Vec<(OnError, Box<dyn Sink>)> = vec![(OnError::EndRun, Box::new(stdout))];
        if let Some((path, format)) = &outputs.summary {
            sinks.push((OnError::EndRun, Box::new(SummaryFile::new(path, *format))));
        }
        if let Some((path, format)) = &outputs.summary_plot {
            sinks.push((OnError::EndRun, Box::new(SummaryPlot::new(path, *format))));
        }
        let files: Option<Box<dyn Sink>> = match &outputs.files {
            Some(Files::Images {
                target,
                format,
                options,
            }) => Some(Box::new(
                Images::new(target.clone(), *format, options.clone())
                    .warn(outputs.warn.then_some(super::FLAGS))
                    .lenses(outputs.lenses),
            )),
            Some(Files::Report(target)) => Some(Box::new(
                Html::new(target.clone(), outputs.single_json).lenses(outputs.lenses),
            )),
            None => None,
        };
        sinks.extend(files.map(|f| (OnError::FailPrompt, f)));
        Self(sinks)
    }

    /// Begins every sink with what the run is about.
    pub(crate) fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.0.iter_mut().try_for_each(|(_, sink)| sink.begin(ctx))
    }

    /// Gives every sink the reports an earlier run finished (`--resume`).
    pub(crate) fn resumed(&mut self, finished: &[Finished]) -> Result<()> {
        for f in finished {
            self.0
                .iter_mut()
                .try_for_each(|(_, sink)| sink.resumed(f))?;
        }
        Ok(())
    }

    /// Writes one prompt's `reports` (one per lens) to every sink, in order: an error that
    /// ends the run, else whether the prompt was written or why it failed ([`OnError`]).
    pub(crate) fn write(&mut self, reports: &[Report]) -> Result<Result<()>> {
        let unfit = reports
            .iter()
            .find_map(|r| self.0.iter().find_map(|(_, sink)| sink.check(r).err()));
        if let Some(e) = unfit {
            return Ok(Err(e));
        }
        let mut written = Ok(());
        for report in reports {
            for (on_error, sink) in &mut self.0 {
                let result = sink.report(report);
                match on_error {
                    OnError::EndRun => result?,
                    OnError::FailPrompt => written = written.and(result),
                }
            }
        }
        Ok(written)
    }

    /// Finishes every sink, in order: an error that ends the run, else whether a sink
    /// failed to finish (said on stderr; the run exits 1).
    pub(crate) fn finish(&mut self) -> Result<bool> {
        let mut failed = false;
        for (on_error, sink) in &mut self.0 {
            match (sink.finish(), on_error) {
                (Ok(()), _) => {}
                (Err(e), OnError::EndRun) => return Err(e),
                (Err(e), OnError::FailPrompt) => {
                    report_error(&e);
                    failed = true;
                }
            }
        }
        Ok(failed)
    }
}

/// The stdout printer of `outputs`, printing to `out`.
fn printer(outputs: &Outputs, top_k: usize, out: impl Write + 'static) -> Box<dyn Sink> {
    let lens = outputs.lenses > 1;
    match outputs.format {
        Format::Table => {
            let table = Table::new(out, outputs.table_stats.clone(), outputs.many)
                .with_layer_step(outputs.layer_step);
            Box::new(match lens {
                true => table.with_lens_labels(),
                false => table,
            })
        }
        Format::Json => Box::new(Json::new(out, outputs.single_json)),
        Format::Jsonl => Box::new(Jsonl::new(out)),
        Format::Csv | Format::Tsv => {
            let delimiter = match outputs.format {
                Format::Csv => b',',
                _ => b'\t',
            };
            // The target columns come with the context (Sink::begin).
            let columns = Columns {
                top_k,
                targets: 0,
                lens,
                nonfinite: outputs.nonfinite,
            };
            Box::new(Delimited::new(out, delimiter, columns))
        }
    }
}

/// The stdout printer under stdout's policy ([`OnError::EndRun`]): when stdout closes
/// early (`| head`) and files are being written (`--out`, `--out-dir`), printing stops and
/// the run goes on; without files the run ends quietly. Any other failure (a full disk)
/// ends the run with one line saying so.
struct Stdout {
    /// None once stdout has closed.
    printer: Option<Box<dyn Sink>>,
    /// Whether files are being written (then a closed stdout does not end the run).
    files: bool,
    /// `--output`: the file printed to instead of stdout.
    file: Option<PathBuf>,
}

impl Stdout {
    /// Runs `step` on the printer: Ok when it wrote, or stdout has closed and files remain
    /// to be written; the error that ends the run otherwise (a closed stdout's broken pipe,
    /// which exits quietly, or one line about any other failure).
    fn call(&mut self, step: impl FnOnce(&mut dyn Sink) -> Result<()>) -> Result<()> {
        let Some(printer) = self.printer.as_mut() else {
            return Ok(());
        };
        match step(printer.as_mut()) {
            Ok(()) => Ok(()),
            Err(e) if is_broken_pipe(&e) && self.files => {
                self.printer = None;
                Ok(())
            }
            Err(e) if is_broken_pipe(&e) => Err(e),
            Err(e) => Err(match &self.file {
                None => anyhow!(
                    "cannot write to stdout: {}; free some disk space, or send stdout elsewhere",
                    one_line(&format!("{e:#}"))
                ),
                Some(path) => anyhow!(
                    "cannot write --output {}: {}; free some disk space, or choose another file",
                    path.display(),
                    one_line(&format!("{e:#}"))
                ),
            }),
        }
    }
}

impl Sink for Stdout {
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.call(|p| p.begin(ctx))
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        self.call(|p| p.report(report))
    }

    fn finish(&mut self) -> Result<()> {
        self.call(|p| p.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;
    use std::sync::Arc;

    use anyhow::bail;

    use super::*;
    use crate::lens::LogitLens;

    /// A sink that records what it was given, and fails where told.
    struct Probe {
        name: &'static str,
        log: Rc<RefCell<Vec<String>>>,
        /// Fails `check` of every report.
        unfit: bool,
        /// Fails `report` of this prompt.
        fail_prompt: Option<usize>,
        fail_finish: bool,
    }

    impl Probe {
        fn new(name: &'static str, log: &Rc<RefCell<Vec<String>>>) -> Self {
            Self {
                name,
                log: log.clone(),
                unfit: false,
                fail_prompt: None,
                fail_finish: false,
            }
        }

        fn unfit(self) -> Self {
            Self {
                unfit: true,
                ..self
            }
        }

        fn failing_at(self, prompt: usize) -> Self {
            Self {
                fail_prompt: Some(prompt),
                ..self
            }
        }

        fn failing_to_finish(self) -> Self {
            Self {
                fail_finish: true,
                ..self
            }
        }
    }

    impl Sink for Probe {
        fn check(&self, _report: &Report) -> Result<()> {
            match self.unfit {
                true => bail!("{} cannot show it", self.name),
                false => Ok(()),
            }
        }

        fn report(&mut self, report: &Report) -> Result<()> {
            let entry = format!("{} {} {}", self.name, report.prompt_index, report.lens_kind);
            self.log.borrow_mut().push(entry);
            match self.fail_prompt == Some(report.prompt_index) {
                true => bail!("{} failed", self.name),
                false => Ok(()),
            }
        }

        fn finish(&mut self) -> Result<()> {
            self.log.borrow_mut().push(format!("{} finish", self.name));
            match self.fail_finish {
                true => bail!("{} cannot finish", self.name),
                false => Ok(()),
            }
        }
    }

    fn report(prompt_index: usize, lens_kind: &'static str) -> Report {
        Report {
            model: "m".into(),
            prompt: "p".into(),
            prompt_index,
            prompt_id: None,
            lens: Arc::new(LogitLens { final_norm: true }),
            lens_kind,
            first_layer: None,
            settled_layer: None,
            top_k: 0,
            tokens: vec![],
            targets: vec![],
            layers: vec![],
            provenance: None,
        }
    }

    fn sinks(probes: Vec<(OnError, Probe)>) -> Sinks {
        Sinks(
            probes
                .into_iter()
                .map(|(on, p)| (on, Box::new(p) as Box<dyn Sink>))
                .collect(),
        )
    }

    fn log_of(log: &Rc<RefCell<Vec<String>>>) -> Vec<String> {
        log.borrow().clone()
    }

    #[test]
    fn a_file_error_fails_its_prompt_and_every_sink_still_gets_the_reports() {
        let log = Rc::default();
        let mut sinks = sinks(vec![
            (OnError::EndRun, Probe::new("stdout", &log)),
            (
                OnError::FailPrompt,
                Probe::new("images", &log).failing_at(3),
            ),
        ]);
        let written = sinks.write(&[report(3, "logit"), report(3, "tuned")]);
        let failed = written.unwrap().unwrap_err();
        assert_eq!(failed.to_string(), "images failed");
        assert_eq!(
            log_of(&log),
            [
                "stdout 3 logit",
                "images 3 logit",
                "stdout 3 tuned",
                "images 3 tuned"
            ]
        );
        // The next prompt is written as usual.
        assert!(sinks.write(&[report(4, "logit")]).unwrap().is_ok());
    }

    #[test]
    fn a_stdout_or_summary_error_ends_the_run_at_once() {
        let log = Rc::default();
        let mut sinks = sinks(vec![
            (OnError::EndRun, Probe::new("summary", &log).failing_at(0)),
            (OnError::FailPrompt, Probe::new("images", &log)),
        ]);
        let ended = sinks.write(&[report(0, "logit")]).unwrap_err();
        assert_eq!(ended.to_string(), "summary failed");
        assert_eq!(log_of(&log), ["summary 0 logit"]);
    }

    #[test]
    fn a_prompt_a_sink_cannot_show_fails_before_anything_is_written() {
        let log = Rc::default();
        let mut sinks = sinks(vec![
            (OnError::EndRun, Probe::new("stdout", &log)),
            (OnError::FailPrompt, Probe::new("images", &log).unfit()),
        ]);
        let failed = sinks.write(&[report(0, "logit")]).unwrap().unwrap_err();
        assert_eq!(failed.to_string(), "images cannot show it");
        assert!(log_of(&log).is_empty());
    }

    #[test]
    fn finishing_follows_each_policy() {
        // A report that cannot be written at the end: said, exit code 1, the rest finish.
        let log = Rc::default();
        let mut sinks_a = sinks(vec![
            (
                OnError::FailPrompt,
                Probe::new("page", &log).failing_to_finish(),
            ),
            (OnError::EndRun, Probe::new("stdout", &log)),
        ]);
        assert!(sinks_a.finish().unwrap());
        assert_eq!(log_of(&log), ["page finish", "stdout finish"]);
        // A summary that cannot be written ends the run: the sinks after it do not finish.
        let log = Rc::default();
        let mut sinks_b = sinks(vec![
            (
                OnError::EndRun,
                Probe::new("summary", &log).failing_to_finish(),
            ),
            (OnError::FailPrompt, Probe::new("page", &log)),
        ]);
        assert_eq!(
            sinks_b.finish().unwrap_err().to_string(),
            "summary cannot finish"
        );
        assert_eq!(log_of(&log), ["summary finish"]);
        // Nothing failed.
        let log = Rc::default();
        let mut sinks_c = sinks(vec![(OnError::EndRun, Probe::new("stdout", &log))]);
        assert!(!sinks_c.finish().unwrap());
    }

    /// A stdout that fails every write with `kind`.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(self.0, "no"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::new(self.0, "no"))
        }
    }

    fn stdout(kind: io::ErrorKind, files: bool) -> Stdout {
        Stdout {
            printer: Some(Box::new(Jsonl::new(Failing(kind)))),
            files,
            file: None,
        }
    }

    #[test]
    fn a_closed_stdout_is_dropped_while_files_are_written_and_ends_the_run_otherwise() {
        let mut with_files = stdout(io::ErrorKind::BrokenPipe, true);
        assert!(with_files.report(&report(0, "logit")).is_ok());
        assert!(with_files.printer.is_none());
        assert!(with_files.finish().is_ok());

        let mut alone = stdout(io::ErrorKind::BrokenPipe, false);
        let ended = alone.report(&report(0, "logit")).unwrap_err();
        assert!(is_broken_pipe(&ended), "{ended:#}");

        let mut full = stdout(io::ErrorKind::StorageFull, true);
        let ended = full.report(&report(0, "logit")).unwrap_err();
        assert!(!is_broken_pipe(&ended));
        assert_eq!(
            ended.to_string(),
            "cannot write to stdout: no; free some disk space, or send stdout elsewhere"
        );
    }
}
