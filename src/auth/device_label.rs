//! Readable device names ("Chrome on Windows", "Safari on iPhone") for the account page's
//! session list and the device-choice page, so a member can tell their sessions apart.
//!
//! Labels are computed from the raw `User-Agent` each time they are shown and never
//! stored: the session keeps the raw UA, so a better parser (or newer regexes) relabels
//! every existing session for free.
//!
//! Parsing uses uap-core's regexes, vendored in `vendor/uap-core` and compiled once per
//! process on first use. If they fail to load, one error is logged and every label falls
//! back to the empty one (the caller then prints a generic "Unknown device").

use std::sync::LazyLock;

use ua_parser::Extractor;

/// Longest prefix of a `User-Agent` we parse: real ones are well under this, and a huge
/// header must not cost more than a normal one.
const MAX_UA_BYTES: usize = 512;

/// What kind of device a user agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Computer,
    Phone,
    Tablet,
}

impl DeviceKind {
    /// Stable lowercase name, for templates (icons, CSS classes) and catalog keys.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Computer => "computer",
            DeviceKind::Phone => "phone",
            DeviceKind::Tablet => "tablet",
        }
    }
}

/// A user agent as a member would name it. `browser` and `os` are empty when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLabel {
    /// Browser family without version: "Chrome", "Firefox", "Safari", "Edge", …
    pub browser: String,
    /// "Windows", "macOS", "Linux", "Android", "ChromeOS", or "iPhone" / "iPad" for iOS.
    pub os: String,
    pub kind: DeviceKind,
}

impl DeviceLabel {
    fn unknown() -> Self {
        Self {
            browser: String::new(),
            os: String::new(),
            kind: DeviceKind::Computer,
        }
    }
}

static EXTRACTOR: LazyLock<Option<Extractor<'static>>> = LazyLock::new(|| {
    let regexes: ua_parser::Regexes<'static> = match serde_json::from_str(include_str!(
        "../../vendor/uap-core/regexes.json"
    )) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "device labels disabled: uap-core regexes do not parse");
            return None;
        }
    };
    match Extractor::try_from(regexes) {
        Ok(x) => Some(x),
        Err(e) => {
            tracing::error!(error = %e, "device labels disabled: uap-core regexes do not compile");
            None
        }
    }
});

/// Label a `User-Agent` header value. Never fails: unknown parts come back empty.
pub fn label(user_agent: &str) -> DeviceLabel {
    let ua = truncate(user_agent.trim(), MAX_UA_BYTES);
    if ua.is_empty() {
        return DeviceLabel::unknown();
    }
    let Some(extractor) = EXTRACTOR.as_ref() else {
        return DeviceLabel::unknown();
    };
    let (browser, os, device) = extractor.extract(ua);
    let browser = browser.map(|b| b.family).unwrap_or_default();
    let os = os.map(|o| o.os).unwrap_or_default();
    let (device, model) = match device {
        Some(d) => (d.device, d.model.unwrap_or_default()),
        None => Default::default(),
    };

    let kind = kind(ua, &os, &device, &model);
    DeviceLabel {
        browser: browser_name(&browser).to_owned(),
        os: os_name(&os, &device).to_owned(),
        kind,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// uap's UA family as a member knows it: one name per browser, whatever the platform.
fn browser_name(family: &str) -> &str {
    match family {
        "Other" => "",
        "Mobile Safari" | "Mobile Safari UI/WKWebView" => "Safari",
        "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome Mobile WebView" | "HeadlessChrome" => {
            "Chrome"
        }
        "Firefox Mobile" | "Firefox iOS" => "Firefox",
        "Edge Mobile" => "Edge",
        "Opera Mobile" => "Opera",
        other => other,
    }
}

/// uap's OS family as a member knows it; iOS devices go by the device ("iPhone", "iPad").
fn os_name<'a>(os: &'a str, device: &'a str) -> &'a str {
    match os {
        "Other" => "",
        "Mac OS X" | "Mac OS" => "macOS",
        "Chrome OS" => "ChromeOS",
        "iOS" => {
            if device.starts_with("iPad") {
                "iPad"
            } else if device.starts_with("iPhone") {
                "iPhone"
            } else if device.starts_with("iPod") {
                "iPod"
            } else {
                "iOS"
            }
        }
        other => other,
    }
}

/// Phone, tablet or computer, from what uap saw and a few plain UA tokens.
fn kind(ua: &str, os: &str, device: &str, model: &str) -> DeviceKind {
    if device.starts_with("iPad") {
        return DeviceKind::Tablet;
    }
    if device.starts_with("iPhone") || device.starts_with("iPod") || os == "Windows Phone" {
        return DeviceKind::Phone;
    }
    // "Generic Tablet", "Galaxy Tab S9", "Lenovo Tab M10", …
    if device.contains("Tab") || model.contains("Tab") {
        return DeviceKind::Tablet;
    }
    if os == "Android" || ua.contains("Android") {
        // Android tablets' browsers leave "Mobile" out of the UA; phones' put it in.
        return if ua.contains("Mobile") {
            DeviceKind::Phone
        } else {
            DeviceKind::Tablet
        };
    }
    // Other phones: feature phones, KaiOS, BlackBerry, … ("Mobi" is the usual marker).
    if device.contains("Phone") || ua.contains("Mobi") {
        return DeviceKind::Phone;
    }
    DeviceKind::Computer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, browser: &str, os: &str, kind: DeviceKind) {
        let want = DeviceLabel {
            browser: browser.to_owned(),
            os: os.to_owned(),
            kind,
        };
        assert_eq!(label(ua), want, "{ua}");
    }

    #[test]
    fn computers() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Safari/537.36",
            "Chrome",
            "Windows",
            DeviceKind::Computer,
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Safari",
            "macOS",
            DeviceKind::Computer,
        );
        check(
            "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
            "Firefox",
            "Linux",
            DeviceKind::Computer,
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0",
            "Edge",
            "Windows",
            DeviceKind::Computer,
        );
        check(
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Safari/537.36",
            "Chrome",
            "ChromeOS",
            DeviceKind::Computer,
        );
    }

    /// uap calls it "HeadlessChrome"; members (and our browser tests) see "Chrome".
    #[test]
    fn headless_chrome_is_chrome() {
        check(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/142.0.0.0 Safari/537.36",
            "Chrome",
            "Linux",
            DeviceKind::Computer,
        );
    }

    #[test]
    fn iphones_go_by_device_name() {
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iPhone",
            DeviceKind::Phone,
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) CriOS/142.0.7444.46 Mobile/15E148 Safari/604.1",
            "Chrome",
            "iPhone",
            DeviceKind::Phone,
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) FxiOS/145.0 Mobile/15E148 Safari/605.1.15",
            "Firefox",
            "iPhone",
            DeviceKind::Phone,
        );
    }

    #[test]
    fn ipad_is_a_tablet() {
        check(
            "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            "Safari",
            "iPad",
            DeviceKind::Tablet,
        );
    }

    #[test]
    fn android_phones() {
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            DeviceKind::Phone,
        );
        // Chrome's reduced UA: the model is always "K".
        check(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            DeviceKind::Phone,
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) \
             SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            "Samsung Internet",
            "Android",
            DeviceKind::Phone,
        );
        check(
            "Mozilla/5.0 (Android 14; Mobile; rv:145.0) Gecko/145.0 Firefox/145.0",
            "Firefox",
            "Android",
            DeviceKind::Phone,
        );
    }

    #[test]
    fn android_tablets() {
        check(
            "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) \
             SamsungBrowser/20.0 Chrome/106.0.5249.126 Safari/537.36",
            "Samsung Internet",
            "Android",
            DeviceKind::Tablet,
        );
        check(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/142.0.0.0 Safari/537.36",
            "Chrome",
            "Android",
            DeviceKind::Tablet,
        );
        check(
            "Mozilla/5.0 (Android 14; Tablet; rv:145.0) Gecko/145.0 Firefox/145.0",
            "Firefox",
            "Android",
            DeviceKind::Tablet,
        );
    }

    #[test]
    fn windows_phone() {
        check(
            "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) \
             AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 \
             Edge/15.15063",
            "Edge",
            "Windows Phone",
            DeviceKind::Phone,
        );
    }

    /// uap knows curl but not its OS: the caller gets a browser and no OS.
    #[test]
    fn curl() {
        check("curl/8.5.0", "curl", "", DeviceKind::Computer);
    }

    #[test]
    fn empty_and_unknown() {
        check("", "", "", DeviceKind::Computer);
        check("   ", "", "", DeviceKind::Computer);
        check("xyzzy", "", "", DeviceKind::Computer);
    }

    #[test]
    fn huge_header_is_labelled_by_its_prefix() {
        let ua = format!(
            "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0 {}",
            "é".repeat(100_000)
        );
        check(&ua, "Firefox", "Linux", DeviceKind::Computer);
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate("abc", 512), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // "é" is two bytes: cutting at 2 would split it.
        assert_eq!(truncate("aéb", 2), "a");
        assert_eq!(truncate("aéb", 3), "aé");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn kind_names() {
        assert_eq!(DeviceKind::Computer.as_str(), "computer");
        assert_eq!(DeviceKind::Phone.as_str(), "phone");
        assert_eq!(DeviceKind::Tablet.as_str(), "tablet");
    }
}
