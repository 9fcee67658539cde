//! Named formats for the logs people meet most (`format syslog`): each is a
//! regex with named captures, so it behaves exactly like `format regex
//! "..."` — declare `fields { status: int }` to type a capture.

/// One named format.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub regex: &'static str,
    /// What it reads, with an example line.
    pub doc: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "syslog",
        regex: r"^(?:<(?P<priority>\d{1,3})>)?(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)?|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) (?P<host>\S+) (?:(?P<app>[^\[:\s]+)(?:\[(?P<pid>\d+)\])?: ?)?(?P<message>.*)$",
        doc: "syslog RFC 3164 (/var/log/syslog, auth.log): `Dec 10 06:55:46 host sshd[24200]: message`, also with rsyslog's precise timestamps (`2026-12-10T06:55:46.123456+00:00 host sshd[24200]: message`, Ubuntu's default)",
    },
    Preset {
        name: "syslog5424",
        regex: r"^<(?P<priority>\d{1,3})>1 (?:-|(?P<timestamp>\S+)) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) (?P<structured_data>-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?P<message>.*)$",
        doc: "syslog RFC 5424: `<165>1 2026-10-11T22:14:15.003Z host app 8710 ID47 [sd@1 k=\"v\"] message`",
    },
    Preset {
        name: "combined",
        regex: r#"^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<timestamp>[^\]]+)\] "(?:(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<protocol>[A-Z]+/[\d.]+))?|(?P<request>(?:[^"\\]|\\.)*))" (?P<status>\d{3}) (?:(?P<bytes>\d+)|-)(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<user_agent>(?:[^"\\]|\\.)*)")?"#,
        doc: "Apache and nginx access logs, Common or Combined Log Format: `127.0.0.1 - frank [10/Oct/2026:13:55:36 -0700] \"GET / HTTP/1.1\" 200 2326 \"-\" \"curl/8\"` (a request that is not `METHOD PATH PROTOCOL`, such as a TLS handshake sent to the HTTP port, is kept whole in `request`; bytes `-` is null)",
    },
    Preset {
        name: "apache_error",
        regex: r"^\[(?P<timestamp>[^\]]+)\] \[(?:(?P<module>[^:\]]+):)?(?P<severity>[^\]]+)\](?: \[pid (?P<pid>\d+)(?::tid \d+)?\])?(?: \[client (?P<client>[^\]]+)\])? (?P<message>.*)$",
        doc: "Apache error log (2.2 and 2.4): `[Sun Oct 11 14:32:52.123456 2026] [core:error] [pid 35708:tid 1] [client 1.2.3.4:5] message`",
    },
    Preset {
        name: "nginx_error",
        regex: r"^(?P<timestamp>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<severity>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<connection>\d+) )?(?P<message>.*)$",
        doc: "nginx error log: `2026/11/01 12:00:05 [error] 1234#1234: *5 message`",
    },
    Preset {
        name: "cri",
        regex: r"^(?P<timestamp>\d{4}-\d{2}-\d{2}T\S+) (?P<stream>stdout|stderr) (?P<tag>[FP])(?::\S*)? ?(?P<message>.*)$",
        doc: "Kubernetes container logs written by containerd or CRI-O (/var/log/containers, /var/log/pods): `2026-11-01T12:00:05.123456789Z stdout F message` (`tag` P: a part of a line longer than 16 KiB)",
    },
];

pub fn lookup(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(preset: &str, line: &str) -> Vec<(String, String)> {
        let p = lookup(preset).unwrap_or_else(|| panic!("{preset}"));
        let re = regex::Regex::new(p.regex).unwrap_or_else(|e| panic!("{preset}: {e}"));
        let caps = re
            .captures(line)
            .unwrap_or_else(|| panic!("{preset} does not match {line}"));
        re.capture_names()
            .flatten()
            .filter_map(|n| {
                caps.name(n)
                    .map(|v| (n.to_string(), v.as_str().to_string()))
            })
            .collect()
    }

    fn get<'a>(f: &'a [(String, String)], k: &str) -> &'a str {
        f.iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn each_preset_reads_its_example() {
        let f = fields(
            "syslog",
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster",
        );
        assert_eq!(get(&f, "timestamp"), "Dec 10 06:55:46");
        assert_eq!(get(&f, "app"), "sshd");
        assert_eq!(get(&f, "pid"), "24200");
        assert_eq!(get(&f, "message"), "Invalid user webmaster");
        let f = fields(
            "syslog",
            "2026-12-10T06:55:46.123456+01:00 web-1 systemd[1]: Started Session 3.",
        );
        assert_eq!(get(&f, "timestamp"), "2026-12-10T06:55:46.123456+01:00");
        assert_eq!(get(&f, "host"), "web-1");
        assert_eq!(get(&f, "app"), "systemd");
        assert_eq!(get(&f, "message"), "Started Session 3.");
        // A tag that is not one (old sysklogd writes its version): the rest
        // is the message.
        let f = fields("syslog", "Jun  9 06:06:20 combo syslogd 1.4.1: restart.");
        assert_eq!((get(&f, "host"), get(&f, "app")), ("combo", ""));
        assert_eq!(get(&f, "message"), "syslogd 1.4.1: restart.");
        let f = fields(
            "syslog",
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure;",
        );
        assert_eq!(
            (get(&f, "app"), get(&f, "pid")),
            ("sshd(pam_unix)", "19939")
        );
        let f = fields("syslog", "<13>Dec  9 23:59:59 host CRON: done");
        assert_eq!(get(&f, "priority"), "13");
        assert_eq!(get(&f, "app"), "CRON");
        let f = fields(
            "syslog5424",
            r#"<165>1 2026-10-11T22:14:15.003Z mymachine app 8710 ID47 [ex@32473 iut="3" eventSource="App"] An entry"#,
        );
        assert_eq!(get(&f, "timestamp"), "2026-10-11T22:14:15.003Z");
        assert!(get(&f, "structured_data").starts_with("[ex@32473"));
        assert_eq!(get(&f, "message"), "An entry");
        let f = fields("syslog5424", "<13>1 - host app - - - no time");
        assert_eq!(get(&f, "timestamp"), "");
        let f = fields(
            "combined",
            r#"127.0.0.1 - frank [10/Oct/2026:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 200 2326 "http://x/" "Mozilla/4.08 [en]""#,
        );
        assert_eq!(get(&f, "path"), "/a?b=1");
        assert_eq!(get(&f, "status"), "200");
        assert_eq!(get(&f, "user_agent"), "Mozilla/4.08 [en]");
        let f = fields(
            "combined",
            r#"10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "POST /x HTTP/1.1" 201 -"#,
        );
        assert_eq!(get(&f, "bytes"), "", "no bytes: null");
        assert_eq!(get(&f, "protocol"), "HTTP/1.1");
        // What scanners and TLS clients send to an HTTP port, and quotes
        // escaped in a user agent (Apache writes `\"`).
        let f = fields(
            "combined",
            r#"10.0.0.2 - - [10/Oct/2026:13:55:36 +0000] "\x16\x03\x01\x00\xA5" 400 157 "-" "-""#,
        );
        assert_eq!(get(&f, "request"), r"\x16\x03\x01\x00\xA5");
        assert_eq!((get(&f, "method"), get(&f, "status")), ("", "400"));
        let f = fields(
            "combined",
            r#"10.0.0.3 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "x \"quoted\" y""#,
        );
        assert_eq!(get(&f, "user_agent"), r#"x \"quoted\" y"#);
        let f = fields(
            "combined",
            r#"10.0.0.4 - - [10/Oct/2026:13:55:36 +0000] "-" 408 0 "-" "-""#,
        );
        assert_eq!((get(&f, "request"), get(&f, "status")), ("-", "408"));
        let f = fields(
            "cri",
            r#"2026-11-01T12:00:05.123456789Z stderr F {"level":"error","msg":"db down"}"#,
        );
        assert_eq!(get(&f, "timestamp"), "2026-11-01T12:00:05.123456789Z");
        assert_eq!((get(&f, "stream"), get(&f, "tag")), ("stderr", "F"));
        assert_eq!(get(&f, "message"), r#"{"level":"error","msg":"db down"}"#);
        let f = fields("cri", "2026-11-01T12:00:05.1+01:00 stdout P");
        assert_eq!((get(&f, "tag"), get(&f, "message")), ("P", ""));
        let f = fields(
            "apache_error",
            "[Sun Oct 11 14:32:52.123456 2026] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:1] File does not exist",
        );
        assert_eq!(get(&f, "module"), "core");
        assert_eq!(get(&f, "severity"), "error");
        assert_eq!(get(&f, "client"), "72.15.99.187:1");
        assert_eq!(get(&f, "message"), "File does not exist");
        let f = fields(
            "apache_error",
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
        );
        assert_eq!(get(&f, "severity"), "notice");
        let f = fields(
            "nginx_error",
            "2026/11/01 12:00:05 [error] 1234#1234: *5 open() failed",
        );
        assert_eq!(get(&f, "connection"), "5");
        assert_eq!(get(&f, "message"), "open() failed");
    }
}
