//! Test hooks, built only with `--features test-hooks` (the test stages build it; shipped
//! binaries do not): a worker sleeps per call (`--test-delay-ms`), panics on one exact text
//! (`--test-panic-on`), or the model load takes longer (`--test-load-delay-ms`). Without the
//! feature the options are unknown to `serve` and every hook is an empty inline function.

#[cfg(feature = "test-hooks")]
use std::time::Duration;

/// The hooks a test asked for (none without the feature).
#[derive(Clone, Default)]
pub(super) struct Hooks {
    #[cfg(feature = "test-hooks")]
    delay: Duration,
    #[cfg(feature = "test-hooks")]
    panic_on: Option<String>,
    #[cfg(feature = "test-hooks")]
    load_delay: Duration,
}

impl Hooks {
    #[cfg(feature = "test-hooks")]
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let ms = |args: &mut pico_args::Arguments, key| {
            args.opt_value_from_str::<_, u64>(key)
                .map(|v| Duration::from_millis(v.unwrap_or(0)))
                .map_err(|e| e.to_string())
        };
        Ok(Hooks {
            delay: ms(args, "--test-delay-ms")?,
            panic_on: args
                .opt_value_from_str("--test-panic-on")
                .map_err(|e| e.to_string())?,
            load_delay: ms(args, "--test-load-delay-ms")?,
        })
    }

    #[cfg(not(feature = "test-hooks"))]
    pub fn parse(_: &mut pico_args::Arguments) -> Result<Self, String> {
        Ok(Hooks::default())
    }

    /// Before the model loads (the 503-while-loading test).
    #[inline]
    pub fn before_load(&self) {
        #[cfg(feature = "test-hooks")]
        std::thread::sleep(self.load_delay);
    }

    /// Before a worker's call (queueing and overload tests).
    #[inline]
    pub fn before_call(&self) {
        #[cfg(feature = "test-hooks")]
        std::thread::sleep(self.delay);
    }

    /// On each text of a call (a panic in one row of a batch stays in its request).
    #[inline]
    pub fn on_text(&self, _text: &str) {
        #[cfg(feature = "test-hooks")]
        if self.panic_on.as_deref() == Some(_text) {
            panic!("--test-panic-on: a worker panics on this text");
        }
    }
}
