//! The bench's progress on stderr: a spinner on a terminal, plain lines otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub(super) struct Progress {
    pb: ProgressBar,
}

impl Progress {
    pub fn start() -> Self {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg} {pos}/{len}").expect("template"),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        Self { pb }
    }

    /// A line that stays (a figure, a verdict).
    pub fn note(&self, line: impl AsRef<str>) {
        if self.pb.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            self.pb.println(line.as_ref());
        }
    }

    /// A new phase of `len` steps (0: unknown).
    pub fn phase(&self, msg: impl Into<String>, len: u64) {
        let msg = msg.into();
        if self.pb.is_hidden() {
            eprintln!("... {msg}");
        }
        self.pb.set_message(msg);
        self.pb.set_length(len);
        self.pb.set_position(0);
    }

    pub fn set_position(&self, pos: u64) {
        self.pb.set_position(pos);
    }

    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}
