//! When a usage limit resets, read from what the agent printed (SPEC §14
//! "Usage limits are not failures"). Pure: text and the caller's clock in,
//! Unix seconds out; the state machine adds `limits.grace` and waits.
//!
//! What is read, and where each form comes from:
//! - Claude Code, subscription login (FIELD-NOTES "Conversations, limits and
//!   MCP"; its formatter is `toLocaleString("en-US")` with the zone from
//!   `Intl…resolvedOptions().timeZone`): `You've hit your session limit ·
//!   resets 6:33pm (UTC)`, `resets 6pm (America/New_York)`; past 24 hours
//!   with the date, `resets Dec 3, 9am (Europe/Berlin)`, `resets Dec 3 at
//!   9:30am (UTC)` (newer ICU), and with the year when it differs, `resets
//!   Jan 2, 2027, 9am (Asia/Tokyo)`. The limit's name ("5-hour", "weekly",
//!   "Opus") does not matter: only what follows `resets`.
//! - Anthropic's `anthropic-ratelimit-unified-reset: 1796350000` header (an
//!   epoch, what Claude Code formats the line above from), `resets at
//!   <epoch>`, and RFC 3339 after `reset`/`resets` (`…-requests-reset:
//!   2026-12-04T03:00:00Z`, or with an offset). Older Claude Code releases
//!   printed `Claude AI usage limit reached|<epoch>` and `Your limit will
//!   reset at 1pm (Etc/GMT+5)`.
//! - Codex (`codex-rs/core/src/error.rs`, `format_retry_timestamp`): `try
//!   again at 3:00 PM` the same day, `try again at Dec 29th, 2026 10:15 PM`
//!   later, both in the host's local zone without saying so (read as UTC,
//!   see below); older releases: `try again in 2 days 3 hours 2 minutes`.
//! - Gemini CLI (its bundle: `classifyGoogleError`, `getResetTimeMessage`):
//!   the API's `Please retry in 17.5s` (or `…ms`), and its `Usage limit
//!   reached … Access resets at 6:33 PM GMT+1.` (`Intl.DateTimeFormat("en-US",
//!   {timeZoneName: "short"})`: `UTC`, `GMT±H[:MM]`, or a US abbreviation
//!   such as `EST`/`PDT`, the only names that format uses).
//! - Generic: `retry in 3m20s`, `retry after 120 seconds`, `try again in 45s`,
//!   `in 1 hour 30 minutes`, `try again at 15:00 (UTC)`, `try again at
//!   2026-12-04 03:00 UTC`.
//!
//! Rules: a clock time without a date is its next occurrence after `now` in
//! its zone (today if still ahead, else tomorrow); a month-day without a
//! year is this year's, or next year's once this year's is past by more than
//! a day. A zone is an IANA name in parentheses (or a bare one such as
//! `CET`), `UTC`/`GMT`/`Z`, a `GMT+1`/`+01:00` offset, or a US abbreviation;
//! a time with no zone is UTC (Codex's local times are then off by the
//! host's offset where that is not UTC: this parser reads no host zone); a
//! zone name that is none of these makes the time unreadable (never a
//! guess). Local times that DST skips or repeats resolve as jiff's
//! "compatible" rule does (after a gap, the first of a fold). The zone
//! database is bundled into the binary, so a host without
//! /usr/share/zoneinfo reads the same.
//!
//! The latest statement wins: anchors (`resets`, `try again at/in`, `retry
//! in/after/at`, `limit reached|`) are read from the last one back, and a
//! bare `in 5 minutes` only when no anchor says anything; never `Retrying
//! in 5s`, an agent's own countdown to its next attempt (Claude Code prints
//! one for transient API errors), which would defeat `limits.wait`. An
//! anchor followed by a time that cannot be read (an unknown zone,
//! `25:99pm`, `Feb 30`, a date without a time) ends the search with None:
//! an older line must not stand in for it. A result at or before `now`, or
//! more than 30 days ahead, is None.

use jiff::civil::{Date, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use regex::{Captures, Regex};
use std::str::FromStr;
use std::sync::LazyLock;

/// How much of the end of the text is read. A limit message is the last
/// thing an agent prints; the rest is history (an older limit's reset is
/// stale). A screenful of a wide pane fits, box-drawing characters taking 3
/// bytes each; a megabyte of scrollback costs no more than this.
const TAIL_BYTES: usize = 16 * 1024;

/// How far past an anchor one reading may reach: the longest form, a dated
/// clock with an IANA zone, is under 80 bytes. Bounds the work per anchor.
const LOOKAHEAD_BYTES: usize = 128;

/// Further ahead than this is not a usage limit's reset (monthly quotas
/// included) but a misreading.
const MAX_AHEAD_SECONDS: i64 = 30 * DAY_SECONDS;

const DAY_SECONDS: i64 = 86_400;

/// The most parts one duration has (`2 days 3 hours 2 minutes 5 seconds`).
const MAX_DURATION_PARTS: usize = 6;

/// US zone abbreviations, the only names (besides `UTC` and `GMT±H`) that
/// `Intl.DateTimeFormat("en-US", {timeZoneName: "short"})` prints, as Gemini
/// CLI does; each stands for one offset there.
const US_SHORT_NAMES: &[(&str, i8)] = &[
    ("EST", -5),
    ("EDT", -4),
    ("CST", -6),
    ("CDT", -5),
    ("MST", -7),
    ("MDT", -6),
    ("PST", -8),
    ("PDT", -7),
    ("AKST", -9),
    ("AKDT", -8),
    ("HST", -10),
    ("HDT", -9),
    ("AST", -4),
    ("ADT", -3),
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The moment a usage limit resets, read from what the agent printed, in
/// Unix seconds, rounded UP to the next whole minute (a reset at 18:33:20
/// is 18:34:00). `now` is Unix seconds (the caller's clock; tests pass a
/// fixed one). None when the text names no time it can read.
pub fn reset_at(text: &str, now: i64) -> Option<i64> {
    let patterns = PATTERNS.as_ref()?;
    let now_instant = Timestamp::from_second(now).ok()?;
    let second = latest_reading(patterns, tail_of(text), now_instant)?;
    rounded_within_window(second, now)
}

/// The regexes, compiled once. `None` only if one fails to compile, which
/// the tests rule out; the parser then reads nothing rather than panic.
static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(Patterns::compile);

struct Patterns {
    /// `resets`, `reset:`, `try again at|in`, `retry in|after|at`, `limit
    /// reached|`: group 1 the word, group 2 the preposition.
    anchor: Regex,
    /// A bare `in`, read only when no anchor says anything; group 1 a
    /// `retrying` before it (not a limit's reset).
    bare_in: Regex,
    epoch: Regex,
    /// `2026-12-04T03:00:00.5Z`, `2026-12-04 03:00`; the zone is read after.
    iso: Regex,
    /// `Dec 3`, `Dec 29th, 2026`, `Jan 2, 2027,`, `Dec 3 at`: month word,
    /// day, year; the clock is read after.
    date: Regex,
    /// `6pm`, `6:33 p.m.`, `15:00`, `18:33:20`: hour, minute, second, a|p.
    clock: Regex,
    /// After a time: group 1 a name in parentheses, group 2 a bare name.
    zone: Regex,
    /// A zone name that is `UTC`/`GMT`/`Z` or an offset from it: the word,
    /// sign, hours, minutes.
    offset: Regex,
    /// One part of a duration (`2h`, `, 13 minutes`, `17.5s`): whole,
    /// fraction, unit word.
    duration_part: Regex,
}

/// Horizontal space, written `SP` in the patterns below: also the no-break
/// spaces newer ICU puts before "PM". Never a line break: a time and its
/// zone stand on one line.
const SP: &str = r"[\p{Zs}\t]";

impl Patterns {
    fn compile() -> Option<Patterns> {
        let re = |pattern: &str| Regex::new(&pattern.replace("SP", SP)).ok();
        Some(Patterns {
            anchor: re(
                r"(?i)\b(resets?|try\s{1,3}again|retry|limit\s{1,3}reached\|)\b(?:\s{1,3}(at|on|in|after)\b)?SP{0,3}[:=]?SP{0,3}",
            )?,
            bare_in: re(r"(?i)(\bretrying\s{1,3})?\bin\bSP{0,3}")?,
            epoch: re(r"\A(\d{10})\b")?,
            iso: re(
                r"(?i)\A(\d{4})-(\d{2})-(\d{2})(?:T|SP{1,2})(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?",
            )?,
            date: re(
                r"(?i)\A([a-z]{3,9})\.?SP{1,2}(\d{1,2})(?:st|nd|rd|th)?\b(?:,?SP{1,2}(\d{4})\b)?(?:,SP{0,2}|SP{1,2}at\bSP{1,2}|SP{1,2})?",
            )?,
            clock: re(r"(?i)\A(\d{1,2})(?::(\d{2})(?::(\d{2}))?)?(?:SP?([ap])\.?m\b\.?)?")?,
            zone: re(
                r"\ASP{0,2}(?:\(([^()\n]{1,64})\)|((?i:utc|gmt)(?:[+-]\d{1,2}(?::?\d{2})?)?|Z|[+-]\d{2}:?\d{2}|[A-Z]{2,5})\b)",
            )?,
            offset: re(r"(?i)\A(UTC|GMT|Z)?(?:([+-])(\d{1,2})(?::?(\d{2}))?)?\z")?,
            duration_part: re(
                r"(?i)\ASP{0,2}(?:(?:,|and\b)SP{0,2}){0,2}(\d{1,9})(?:\.(\d{1,9}))?SP?([a-z]{1,12})",
            )?,
        })
    }
}

/// What the text after one anchor says.
enum Reading {
    /// A moment in Unix seconds, a fraction of a second already rounded up.
    At(i64),
    /// A time is written there but cannot be read (an unknown zone,
    /// `25:99pm`, `Feb 30`, a date without a time).
    Unreadable,
}

impl Reading {
    fn of(resolved: Option<i64>) -> Reading {
        resolved.map_or(Reading::Unreadable, Reading::At)
    }
}

/// What an anchor is followed by.
enum Follows {
    /// A moment: `resets 6pm`, `try again at …`.
    Moment,
    /// A duration from now: `try again in 2h`, `retry after 120 seconds`.
    Duration,
}

/// The end of `text`, at most `TAIL_BYTES`, starting after the word the cut
/// fell into (so `…resets` cut to `sets` cannot pass for something else).
fn tail_of(text: &str) -> &str {
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    tail.find(char::is_whitespace).map_or(tail, |i| &tail[i..])
}

/// At most `LOOKAHEAD_BYTES` of `rest`, cut on a character boundary.
fn lookahead(rest: &str) -> &str {
    let mut end = rest.len().min(LOOKAHEAD_BYTES);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    &rest[..end]
}

/// The reading after the latest anchor that says something: anchors first,
/// a bare `in` only when no anchor does.
fn latest_reading(patterns: &Patterns, text: &str, now: Timestamp) -> Option<i64> {
    let anchors: Vec<(usize, Follows)> = patterns
        .anchor
        .captures_iter(text)
        .filter_map(|c| Some((c.get(0)?.end(), anchor_follows(&c)?)))
        .collect();
    let bare: Vec<(usize, Follows)> = patterns
        .bare_in
        .captures_iter(text)
        .filter(|c| c.get(1).is_none())
        .filter_map(|c| Some((c.get(0)?.end(), Follows::Duration)))
        .collect();
    for tier in [anchors, bare] {
        for (end, follows) in tier.into_iter().rev() {
            match read_after(patterns, follows, lookahead(&text[end..]), now) {
                Some(Reading::At(second)) => return Some(second),
                Some(Reading::Unreadable) => return None,
                None => {}
            }
        }
    }
    None
}

/// `resets` and `limit reached|` may stand alone (`resets 6pm`); `try
/// again` and `retry` need their preposition (`try again later` names no
/// time).
fn anchor_follows(anchor: &Captures) -> Option<Follows> {
    let word = anchor.get(1)?.as_str().to_ascii_lowercase();
    match anchor.get(2).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(p) if p == "in" || p == "after" => Some(Follows::Duration),
        Some(_) => Some(Follows::Moment),
        None if word.starts_with("reset") || word.ends_with('|') => Some(Follows::Moment),
        None => None,
    }
}

/// None when nothing after the anchor looks like a time.
fn read_after(p: &Patterns, follows: Follows, rest: &str, now: Timestamp) -> Option<Reading> {
    match follows {
        Follows::Duration => read_duration(p, rest, now),
        Follows::Moment => read_epoch(p, rest)
            .or_else(|| read_iso(p, rest))
            .or_else(|| read_dated(p, rest, now))
            .or_else(|| read_clock(p, rest, now)),
    }
}

fn read_epoch(p: &Patterns, rest: &str) -> Option<Reading> {
    let c = p.epoch.captures(rest)?;
    Some(Reading::of(number(&c, 1)))
}

fn read_iso(p: &Patterns, rest: &str) -> Option<Reading> {
    let c = p.iso.captures(rest)?;
    let after = &rest[c.get(0)?.end()..];
    Some(Reading::of(resolve_iso(p, &c, after)))
}

fn resolve_iso(p: &Patterns, c: &Captures, after: &str) -> Option<i64> {
    let date = Date::new(number(c, 1)?, number(c, 2)?, number(c, 3)?).ok()?;
    let time = Time::new(number(c, 4)?, number(c, 5)?, number_or(c, 6, 0)?, 0).ok()?;
    let fraction = c
        .get(7)
        .is_some_and(|m| m.as_str().bytes().any(|b| b != b'0'));
    let zone = zone_after(p, after)?;
    let instant = zone.to_timestamp(date.to_datetime(time)).ok()?;
    Some(instant.as_second() + i64::from(fraction))
}

fn read_dated(p: &Patterns, rest: &str, now: Timestamp) -> Option<Reading> {
    let c = p.date.captures(rest)?;
    let month = month_number(c.get(1)?.as_str())?;
    let after = &rest[c.get(0)?.end()..];
    Some(Reading::of(resolve_dated(p, &c, month, after, now)))
}

fn resolve_dated(
    p: &Patterns,
    c: &Captures,
    month: i8,
    after: &str,
    now: Timestamp,
) -> Option<i64> {
    let day: i8 = number(c, 2)?;
    let clock = clock_match(p, after)?;
    let time = clock_time(&clock)?;
    let zone = zone_after(p, &after[clock.get(0)?.end()..])?;
    let on = |year: i16| {
        let date = Date::new(year, month, day).ok()?;
        zone.to_timestamp(date.to_datetime(time)).ok()
    };
    let instant = match c.get(3) {
        Some(year) => on(year.as_str().parse().ok()?)?,
        None => {
            let year = zone.to_datetime(now).year();
            let this_year = on(year).filter(|t| t.as_second() + DAY_SECONDS >= now.as_second());
            this_year.or_else(|| on(year.checked_add(1)?))?
        }
    };
    Some(instant.as_second())
}

fn read_clock(p: &Patterns, rest: &str, now: Timestamp) -> Option<Reading> {
    let c = clock_match(p, rest)?;
    let after = &rest[c.get(0)?.end()..];
    Some(Reading::of(resolve_clock(p, &c, after, now)))
}

/// How long ago a clock time without a date may have passed and still be
/// today's: agents print the reset to the minute (Claude Code shows a
/// reset at 18:33:40 as "6:33pm"), so read at 18:33:50 it is this minute's
/// reset, not tomorrow's.
const JUST_PASSED: i64 = 5 * 60;

/// A clock time without a date: its next occurrence after `now` (one that
/// passed within `JUST_PASSED` is now: the reset is due).
fn resolve_clock(p: &Patterns, c: &Captures, after: &str, now: Timestamp) -> Option<i64> {
    let time = clock_time(c)?;
    let zone = zone_after(p, after)?;
    let today = zone.to_datetime(now).date();
    let today_at = zone.to_timestamp(today.to_datetime(time)).ok()?;
    if today_at > now {
        return Some(today_at.as_second());
    }
    if today_at.as_second() + JUST_PASSED >= now.as_second() {
        return Some(now.as_second() + 1);
    }
    let tomorrow_at = zone
        .to_timestamp(today.tomorrow().ok()?.to_datetime(time))
        .ok()?;
    Some(tomorrow_at.as_second())
}

/// A clock at the start of `s`, written as one: with minutes or am/pm (a
/// bare `5` is a number, not a time) and not the start of a longer number.
fn clock_match<'t>(p: &Patterns, s: &'t str) -> Option<Captures<'t>> {
    let c = p.clock.captures(s)?;
    let end = c.get(0)?.end();
    let written_as_time = c.get(2).is_some() || c.get(4).is_some();
    let digit_follows = s[end..].starts_with(|ch: char| ch.is_ascii_digit());
    (written_as_time && !digit_follows).then_some(c)
}

/// The clock's time of day; None for `25:99pm`, `13pm`, `0am`, `24:00`.
fn clock_time(c: &Captures) -> Option<Time> {
    let hour: i8 = number(c, 1)?;
    let hour = match c.get(4).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(_) if !(1..=12).contains(&hour) => return None,
        Some(half) if half == "p" => hour % 12 + 12,
        Some(_) => hour % 12,
        None => hour,
    };
    Time::new(hour, number_or(c, 2, 0)?, number_or(c, 3, 0)?, 0).ok()
}

/// The zone written after a time: UTC when none is; None when a name is
/// written that is no zone this parser knows.
fn zone_after(p: &Patterns, after: &str) -> Option<TimeZone> {
    let Some(c) = p.zone.captures(after) else {
        return Some(TimeZone::UTC);
    };
    let name = c.get(1).or_else(|| c.get(2))?.as_str().trim();
    zone_named(p, name)
}

fn zone_named(p: &Patterns, name: &str) -> Option<TimeZone> {
    if let Some(c) = p.offset.captures(name) {
        return offset_zone(&c);
    }
    if let Some(&(_, hours)) = US_SHORT_NAMES.iter().find(|(short, _)| *short == name) {
        return Offset::from_hours(hours).ok().map(TimeZone::fixed);
    }
    TimeZone::get(name).ok()
}

/// `UTC`, `GMT`, `Z`, `GMT+1`, `UTC-03:30`, `+0100`.
fn offset_zone(c: &Captures) -> Option<TimeZone> {
    let Some(sign) = c.get(2) else {
        return c.get(1).map(|_| TimeZone::UTC);
    };
    let hours: i32 = number(c, 3)?;
    let minutes: i32 = number_or(c, 4, 0)?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    let seconds = (hours * 3600 + minutes * 60) * if sign.as_str() == "-" { -1 } else { 1 };
    Offset::from_seconds(seconds).ok().map(TimeZone::fixed)
}

/// `Dec`, `december`, `Sept` → 12, 12, 9.
fn month_number(word: &str) -> Option<i8> {
    let word = word.to_ascii_lowercase();
    let index = MONTHS.iter().position(|full| {
        *full == word
            || (word.len() == 3 && full.starts_with(&word))
            || (word == "sept" && *full == "september")
    })?;
    i8::try_from(index + 1).ok()
}

fn read_duration(p: &Patterns, rest: &str, now: Timestamp) -> Option<Reading> {
    let millis = duration_millis(p, rest)?;
    let at = now.as_millisecond().checked_add(millis);
    Some(Reading::of(at.map(|ms| ceil_div(ms, 1000))))
}

/// `2h 13m`, `2 days 3 hours 2 minutes`, `3m20s`, `17.5s`, `506.3ms`, in
/// milliseconds (a fraction rounded up); None when no part has a unit.
fn duration_millis(p: &Patterns, text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total: i64 = 0;
    let mut parts = 0;
    while parts < MAX_DURATION_PARTS {
        let Some(c) = p.duration_part.captures(rest) else {
            break;
        };
        let Some(unit) = c.get(3).and_then(|m| unit_millis(m.as_str())) else {
            break;
        };
        let end = c.get(0)?.end();
        if rest[end..].starts_with(char::is_alphabetic) {
            break; // a longer word than the pattern took: not a unit
        }
        total = total.checked_add(part_millis(&c, unit)?)?;
        rest = &rest[end..];
        parts += 1;
    }
    (parts > 0).then_some(total)
}

fn part_millis(c: &Captures, unit: i64) -> Option<i64> {
    let whole: i64 = number(c, 1)?;
    let fraction = match c.get(2) {
        None => 0,
        Some(digits) => {
            let scale = 10_i64.checked_pow(u32::try_from(digits.len()).ok()?)?;
            let value: i64 = digits.as_str().parse().ok()?;
            ceil_div(value.checked_mul(unit)?, scale)
        }
    };
    whole.checked_mul(unit)?.checked_add(fraction)
}

fn unit_millis(word: &str) -> Option<i64> {
    match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Some(1),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1_000),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60_000),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3_600_000),
        "d" | "day" | "days" => Some(DAY_SECONDS * 1_000),
        _ => None,
    }
}

/// Rounded up to the whole minute; None at or before `now` (an old
/// message) or further ahead than a limit resets.
fn rounded_within_window(second: i64, now: i64) -> Option<i64> {
    if second <= now {
        return None;
    }
    let minute = ceil_div(second, 60) * 60;
    (minute - now <= MAX_AHEAD_SECONDS).then_some(minute)
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    value.div_euclid(divisor) + i64::from(value.rem_euclid(divisor) != 0)
}

fn number<T: FromStr>(c: &Captures, group: usize) -> Option<T> {
    c.get(group)?.as_str().parse().ok()
}

/// The group's number, or `default` when the group is absent.
fn number_or<T: FromStr>(c: &Captures, group: usize, default: T) -> Option<T> {
    c.get(group)
        .map_or(Some(default), |m| m.as_str().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed clock of the tables: Thursday 2026-12-03 17:00:00 UTC
    /// (18:00 in Berlin, 12:00 in New York, 02:00 next day in Tokyo).
    const NOW: &str = "2026-12-03T17:00:00Z";

    type Cases = [(&'static str, Option<&'static str>)];

    fn unix(rfc3339: &str) -> i64 {
        rfc3339
            .parse::<Timestamp>()
            .expect("an RFC 3339 time")
            .as_second()
    }

    fn rfc3339(second: i64) -> String {
        Timestamp::from_second(second)
            .expect("a time in range")
            .to_string()
    }

    /// Every case at once, so one run shows every wrong reading.
    fn check(now: &str, cases: &Cases) {
        let now = unix(now);
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(text, want)| {
                let got = reset_at(text, now).map(rfc3339);
                (got.as_deref() != *want).then(|| format!("{text:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "wrong readings:\n  {}",
            wrong.join("\n  ")
        );
    }

    #[test]
    fn the_fixed_clock_is_the_unix_second_it_names() {
        assert_eq!(unix(NOW), 1_796_317_200);
    }

    #[test]
    fn every_pattern_compiles() {
        assert!(PATTERNS.is_some());
    }

    #[test]
    fn claude_code_clock_times_are_their_next_occurrence_in_their_zone() {
        check(
            NOW,
            &[
                (
                    "You've hit your session limit · resets 6:33pm (UTC)",
                    Some("2026-12-03T18:33:00Z"),
                ),
                // 12:00 in New York now: 6pm EST is still ahead today.
                (
                    "You've hit your 5-hour limit · resets 6pm (America/New_York)",
                    Some("2026-12-03T23:00:00Z"),
                ),
                // 18:00 in Berlin now: 11:59 is past, so tomorrow's (CET, +1).
                (
                    "You've hit your Opus limit · resets 11:59am (Europe/Berlin)",
                    Some("2026-12-04T10:59:00Z"),
                ),
                // 02:00 tomorrow in Tokyo now: 1am is past there, so the next day's.
                (
                    "weekly limit reached ∙ resets 1am (Asia/Tokyo)",
                    Some("2026-12-04T16:00:00Z"),
                ),
                ("resets 7pm", Some("2026-12-03T19:00:00Z")),
                ("resets 7:15 PM (UTC)", Some("2026-12-03T19:15:00Z")),
                (
                    "resets 7:15\u{202f}p.m. (UTC)",
                    Some("2026-12-03T19:15:00Z"),
                ),
                ("RESETS 12AM (UTC)", Some("2026-12-04T00:00:00Z")),
                ("resets 12pm (UTC)", Some("2026-12-04T12:00:00Z")),
                // 18:00 in Berlin is now (17:00Z): due, the next minute.
                ("resets 6pm (europe/berlin)", Some("2026-12-03T17:01:00Z")),
            ],
        );
    }

    #[test]
    fn a_clock_time_already_past_today_is_tomorrow_s() {
        check(
            "2026-12-03T18:40:00Z",
            &[
                (
                    "You've hit your session limit · resets 6:33pm (UTC)",
                    Some("2026-12-04T18:33:00Z"),
                ),
                ("resets 6:41pm (UTC)", Some("2026-12-03T18:41:00Z")),
                // Now, or passed within JUST_PASSED (printed to the minute):
                // due now, the next whole minute; never a day later.
                ("resets 6:40pm (UTC)", Some("2026-12-03T18:41:00Z")),
                ("resets 6:36pm (UTC)", Some("2026-12-03T18:41:00Z")),
                ("resets 6:34pm (UTC)", Some("2026-12-04T18:34:00Z")),
            ],
        );
    }

    #[test]
    fn dated_resets_are_read_with_their_year_or_the_next_occurrence() {
        check(
            NOW,
            &[
                ("You've hit your weekly limit · resets Dec 5, 9am (Europe/Berlin)", Some("2026-12-05T08:00:00Z")),
                ("resets Dec 4 at 9:30am (UTC)", Some("2026-12-04T09:30:00Z")),
                ("resets Jan 2, 2027, 9am (Asia/Tokyo)", Some("2027-01-02T00:00:00Z")),
                // Jan 1 of this year is long past: next year's.
                ("resets Jan 1, 9am (UTC)", Some("2027-01-01T09:00:00Z")),
                ("resets December 10, 6:05 PM (UTC)", Some("2026-12-10T18:05:00Z")),
                ("resets Dec. 4 at 9am", Some("2026-12-04T09:00:00Z")),
                // This morning's (past by less than a day) stays this year's: past, None.
                ("resets Dec 3, 9am (Europe/Berlin)", None),
                ("resets Dec 3 at 9:30am (UTC)", None),
                // Codex, a later day: ordinal, year, 12-hour clock, no zone.
                (
                    "You've hit your usage limit. Upgrade to Pro or try again at Dec 29th, 2026 10:15 PM.",
                    Some("2026-12-29T22:15:00Z"),
                ),
                ("try again at Dec 4th, 2026 3:00 AM.", Some("2026-12-04T03:00:00Z")),
            ],
        );
    }

    #[test]
    fn epochs_and_rfc_3339_after_reset_are_read() {
        check(
            NOW,
            &[
                // 1796350000 is 2026-12-04T02:06:40Z: rounded up to the minute.
                ("resets at 1796350000", Some("2026-12-04T02:07:00Z")),
                (
                    "anthropic-ratelimit-unified-reset: 1796350000",
                    Some("2026-12-04T02:07:00Z"),
                ),
                (
                    "rate limited, reset 1796350000",
                    Some("2026-12-04T02:07:00Z"),
                ),
                (
                    "Claude AI usage limit reached|1796350000",
                    Some("2026-12-04T02:07:00Z"),
                ),
                (
                    "Claude usage limit reached. Your limit will reset at 1pm (Etc/GMT+5).",
                    Some("2026-12-03T18:00:00Z"),
                ),
                ("resets 2026-12-04T03:00:00Z", Some("2026-12-04T03:00:00Z")),
                (
                    "anthropic-ratelimit-requests-reset: 2026-12-04T04:00:00+01:00",
                    Some("2026-12-04T03:00:00Z"),
                ),
                // 12:00 at -05:00 is now: not ahead.
                ("reset=2026-12-03T12:00:00-05:00", None),
                (
                    "reset=2026-12-03T12:01:00-05:00",
                    Some("2026-12-03T17:01:00Z"),
                ),
                (
                    "resets at 2026-12-04t03:00:00.250z",
                    Some("2026-12-04T03:01:00Z"),
                ),
                (
                    "resets at 2026-12-04T03:00:00.000Z",
                    Some("2026-12-04T03:00:00Z"),
                ),
                // Past, far, or not ten digits.
                ("resets at 1796317200", None),
                ("resets at 1700000000", None),
                ("resets at 1899999999", None),
                ("resets at 17963500001", None),
                ("resets at 179635000", None),
            ],
        );
    }

    #[test]
    fn durations_count_from_now() {
        check(
            NOW,
            &[
                (
                    "Usage limit reached, try again in 2h 13m",
                    Some("2026-12-03T19:13:00Z"),
                ),
                ("try again in 45s", Some("2026-12-03T17:01:00Z")),
                (
                    "Limit hit; available again in 5 minutes",
                    Some("2026-12-03T17:05:00Z"),
                ),
                ("in 1 hour 30 minutes", Some("2026-12-03T18:30:00Z")),
                (
                    "try again in 2 days 3 hours 2 minutes",
                    Some("2026-12-05T20:02:00Z"),
                ),
                (
                    "try again in 1 day, 2 hours and 3 minutes",
                    Some("2026-12-04T19:03:00Z"),
                ),
                (
                    "Quota exceeded. Please retry in 17.5s.",
                    Some("2026-12-03T17:01:00Z"),
                ),
                (
                    "Please retry in 17.531287953s.",
                    Some("2026-12-03T17:01:00Z"),
                ),
                ("Please retry in 506.31ms", Some("2026-12-03T17:01:00Z")),
                ("retry in 3m20s", Some("2026-12-03T17:04:00Z")),
                ("retry after 120 seconds", Some("2026-12-03T17:02:00Z")),
                ("resets in 4 hrs", Some("2026-12-03T21:00:00Z")),
                ("RETRY IN 90 MIN", Some("2026-12-03T18:30:00Z")),
                // 29 days is a monthly quota; 31 is past any limit.
                ("try again in 29 days", Some("2027-01-01T17:00:00Z")),
                ("try again in 31 days", None),
                ("try again in 0s", None),
            ],
        );
    }

    #[test]
    fn absolute_times_after_try_again_at() {
        check(
            NOW,
            &[
                // Codex's same-day form: no zone, read as UTC; 3 PM is past.
                (
                    "You've hit your usage limit. Try again at 3:00 PM.",
                    Some("2026-12-04T15:00:00Z"),
                ),
                ("try again at 5:30 PM", Some("2026-12-03T17:30:00Z")),
                ("try again at 15:00 (UTC)", Some("2026-12-04T15:00:00Z")),
                ("try again at 17:30 (UTC)", Some("2026-12-03T17:30:00Z")),
                (
                    "try again at 2026-12-04 03:00 UTC",
                    Some("2026-12-04T03:00:00Z"),
                ),
                (
                    "try again at 2026-12-04 03:00",
                    Some("2026-12-04T03:00:00Z"),
                ),
                ("retry at 18:00 GMT", Some("2026-12-03T18:00:00Z")),
            ],
        );
    }

    #[test]
    fn a_reset_is_rounded_up_to_the_whole_minute() {
        check(
            NOW,
            &[
                ("try again at 18:33:20 (UTC)", Some("2026-12-03T18:34:00Z")),
                ("try again at 18:33:00 (UTC)", Some("2026-12-03T18:33:00Z")),
                (
                    "resets at 2026-12-03T18:33:59Z",
                    Some("2026-12-03T18:34:00Z"),
                ),
                ("retry in 1s", Some("2026-12-03T17:01:00Z")),
            ],
        );
        // From a clock between minutes, a duration lands between minutes too.
        check(
            "2026-12-03T17:00:30Z",
            &[("try again in 5 minutes", Some("2026-12-03T17:06:00Z"))],
        );
    }

    #[test]
    fn zones_are_iana_names_utc_offsets_or_us_abbreviations() {
        check(
            NOW,
            &[
                // Gemini CLI: `Intl` en-US short names.
                ("Usage limit reached for all Pro models.\nAccess resets at 6:33 PM GMT+1.\n/stats model", Some("2026-12-03T17:33:00Z")),
                ("Access resets at 10:05 AM EST.", Some("2026-12-04T15:05:00Z")),
                ("Access resets at 9:05 AM PST.", Some("2026-12-03T17:05:00Z")),
                ("Access resets at 5:30 PM GMT+5:30.", Some("2026-12-04T12:00:00Z")),
                ("Access resets at 2:30 PM GMT-3:30.", Some("2026-12-03T18:00:00Z")),
                ("Access resets at 6:00 PM UTC.", Some("2026-12-03T18:00:00Z")),
                ("resets 6pm (UTC+2)", Some("2026-12-04T16:00:00Z")),
                ("resets 7pm (Etc/UTC)", Some("2026-12-03T19:00:00Z")),
                ("resets 7pm CET", Some("2026-12-03T18:00:00Z")),
                ("try again at 2026-12-04 03:00 +0100", Some("2026-12-04T02:00:00Z")),
                // Names that are no zone: never a guess.
                ("resets 6:33pm (Mars/Olympus_Mons)", None),
                ("resets 9am (IST)", None),
                ("try again at 3:00 PM PT", None),
                ("resets 6pm (GMT+15)", None),
                ("resets 6pm ( )", None),
                // Parentheses with nothing in them name no zone at all.
                ("resets 6pm ()", Some("2026-12-03T18:00:00Z")),
            ],
        );
    }

    #[test]
    fn berlin_summer_and_winter_times_are_different_utc() {
        check(
            "2026-07-01T12:00:00Z",
            &[(
                "resets Jul 3, 9am (Europe/Berlin)",
                Some("2026-07-03T07:00:00Z"),
            )],
        );
        check(
            NOW,
            &[(
                "resets Dec 5, 9am (Europe/Berlin)",
                Some("2026-12-05T08:00:00Z"),
            )],
        );
        // Across the switch back to CET (2026-10-25 03:00 CEST): one clock, two offsets.
        check(
            "2026-10-24T12:00:00Z",
            &[
                ("resets 9pm (Europe/Berlin)", Some("2026-10-24T19:00:00Z")),
                (
                    "resets Oct 25, 9am (Europe/Berlin)",
                    Some("2026-10-25T08:00:00Z"),
                ),
                // Repeated hour: the first of the two 2:30s (still CEST).
                (
                    "resets Oct 25, 2:30am (Europe/Berlin)",
                    Some("2026-10-25T00:30:00Z"),
                ),
            ],
        );
        // A skipped hour (2026-03-29 02:00 -> 03:00): the time after the gap.
        check(
            "2026-03-28T12:00:00Z",
            &[(
                "resets Mar 29, 2:30am (Europe/Berlin)",
                Some("2026-03-29T01:30:00Z"),
            )],
        );
    }

    #[test]
    fn the_latest_statement_wins_and_an_unreadable_one_is_not_replaced() {
        check(
            NOW,
            &[
                (
                    "resets 6pm (UTC)\n...\nYou've hit your session limit · resets 7pm (UTC)",
                    Some("2026-12-03T19:00:00Z"),
                ),
                // An anchor beats a bare `in` that comes later.
                (
                    "resets 7pm (UTC)\nI will look again in 5 minutes",
                    Some("2026-12-03T19:00:00Z"),
                ),
                (
                    "I'll be done in 5 minutes.\nYou've hit your limit · resets 7pm (UTC)",
                    Some("2026-12-03T19:00:00Z"),
                ),
                // `try again later` names no time: the earlier reset stands.
                (
                    "resets 7pm (UTC). Please try again later.",
                    Some("2026-12-03T19:00:00Z"),
                ),
                ("try again in 5 minutes\nresets 9am (Mars/Base)", None),
                ("retry in 2m\nresets 25:99pm", None),
                ("resets Dec 4 (UTC)\nin 5 minutes", None),
                // An agent's own retry countdown is not the limit's reset.
                (
                    "API Error (529 overloaded) · Retrying in 5 seconds · attempt 3/10",
                    None,
                ),
                (
                    "Retrying in 5s\nback in 10 minutes",
                    Some("2026-12-03T17:10:00Z"),
                ),
            ],
        );
    }

    #[test]
    fn text_that_names_no_readable_time_is_none() {
        let garbage: &Cases = &[
            ("", None),
            ("resets", None),
            ("resets ", None),
            ("You've hit your session limit", None),
            ("API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.", None),
            ("try again later", None),
            ("try again in 5", None),
            ("retry after 120", None),
            ("Retry-After: 120", None),
            ("in 5", None),
            ("try again in 45 parsecs", None),
            ("try again in 5 monthsx", None),
            ("try again in 99999999999 seconds", None),
            ("resets 25:99pm", None),
            ("resets 13pm", None),
            ("resets 0am", None),
            ("resets 6:60pm", None),
            ("resets 24:00", None),
            ("resets 18:30:61", None),
            ("resets 5", None),
            ("resets at 2026", None),
            ("resets Feb 30, 9am (UTC)", None),
            ("resets Feb 29, 9am (UTC)", None),
            ("resets Smarch 3, 9am (UTC)", None),
            ("resets Dec 4", None),
            ("resets 2026-13-01T00:00:00Z", None),
            ("the job took 2h 13m", None),
            ("presets 6pm", None),
            ("ħ€ll0 wörld ∙ 12:34 ∙ résets 6pm", None),
            ("\u{0}\u{1b}[31mresets\u{1b}[0m", None),
            ("((((((((((", None),
            ("resets (((((((", None),
            ("resets 6pm (((", Some("2026-12-03T18:00:00Z")),
        ];
        check(NOW, garbage);
    }

    #[test]
    fn a_megabyte_is_read_only_at_its_end() {
        let filler = "lorem ipsum résumé ─│ ".repeat(50_000);
        assert!(filler.len() > 1_000_000);
        let at_end = format!("{filler}\nYou've hit your session limit · resets 6:33pm (UTC)\n");
        assert_eq!(
            reset_at(&at_end, unix(NOW)).map(rfc3339).as_deref(),
            Some("2026-12-03T18:33:00Z")
        );
        // A reset a megabyte back is history, not the latest word.
        let at_start = format!("resets 6:33pm (UTC)\n{filler}");
        assert_eq!(reset_at(&at_start, unix(NOW)), None);
        let digits = "1796350000 ".repeat(100_000) + "resets";
        assert_eq!(reset_at(&digits, unix(NOW)), None);
        let anchors = "resets in at ".repeat(100_000);
        assert_eq!(reset_at(&anchors, unix(NOW)), None);
    }

    #[test]
    fn a_cut_in_a_multibyte_character_or_a_word_is_safe() {
        // Make the cut fall inside `─` (3 bytes) and inside a word.
        for pad in 0..4 {
            let text = format!(
                "{}{}─resets 6:33pm (UTC)",
                "x".repeat(pad),
                "─".repeat(TAIL_BYTES / 3)
            );
            let got = reset_at(&text, unix(NOW));
            assert!(
                got.is_none() || got == Some(unix("2026-12-03T18:33:00Z")),
                "{got:?}"
            );
        }
        let text = format!("{}presets 6pm", "a".repeat(TAIL_BYTES - 6));
        assert_eq!(reset_at(&text, unix(NOW)), None);
    }

    #[test]
    fn a_clock_outside_the_time_range_reads_nothing() {
        for now in [i64::MIN, -377_705_116_801, 253_402_300_800, i64::MAX] {
            assert_eq!(reset_at("try again in 5 minutes", now), None, "now = {now}");
            assert_eq!(reset_at("resets 6pm (UTC)", now), None, "now = {now}");
        }
    }

    /// SplitMix64: a few lines, deterministic, good enough to shuffle text.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).expect("fits")
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Pieces of real messages and of nonsense, for random sentences.
    const PIECES: &[&str] = &[
        "resets",
        "reset:",
        "try again",
        "retry",
        " at ",
        " in ",
        " after ",
        " ",
        ", ",
        "·",
        "\n",
        "(",
        ")",
        "UTC",
        "GMT+1",
        "Europe/Berlin",
        "America/New_York",
        "Mars/Base",
        "EST",
        "Z",
        "pm",
        "am",
        "p.m.",
        "PM",
        ":",
        "6",
        "12",
        "13",
        "25",
        "59",
        "99",
        "00",
        "1796350000",
        "2026-12-04",
        "T",
        "03:00:00",
        ".5",
        "+01:00",
        "Dec",
        "Jan",
        "Feb 30",
        "3rd",
        "2027",
        "h",
        "m",
        "s",
        "ms",
        "days",
        "minutes",
        "17.5",
        "\u{202f}",
        "é",
        "∙",
        "─",
        "\u{0}",
        "9999999999",
    ];

    /// A table text with a character inserted, removed or replaced.
    fn mutated(mix: &mut Mix, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..=mix.below(3) {
            let at = mix.below(chars.len() + 1);
            let other = [
                '0', '9', ':', ' ', '(', ')', 'p', 'm', '\u{202f}', 'ñ', '-', '+',
            ][mix.below(12)];
            match mix.below(3) {
                0 => chars.insert(at, other),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => chars[at] = other,
                _ => chars.push(other),
            }
        }
        chars.into_iter().collect()
    }

    #[test]
    fn random_and_mutated_text_never_panics_and_stays_in_the_window() {
        let seeds = [
            "You've hit your session limit · resets 6:33pm (UTC)",
            "resets Jan 2, 2027, 9am (Asia/Tokyo)",
            "try again at Dec 29th, 2026 10:15 PM.",
            "Please retry in 17.531287953s.",
            "try again in 2 days 3 hours 2 minutes",
            "resets at 2026-12-04T04:00:00+01:00",
            "Access resets at 5:30 PM GMT+5:30.",
            "anthropic-ratelimit-unified-reset: 1796350000",
        ];
        let mut mix = Mix(24);
        let mut read = 0;
        for round in 0..4000 {
            // Random text under clocks over a year; the mutated messages
            // near the table's clock, where their dates are in the window.
            let span = if round % 2 == 0 { 400 } else { 1 };
            let offset = mix.below(usize::try_from(span * DAY_SECONDS).expect("fits"));
            let now = unix(NOW) + i64::try_from(offset).expect("fits");
            let text = if round % 2 == 0 {
                (0..=mix.below(12))
                    .map(|_| mix.pick(PIECES))
                    .collect::<String>()
            } else {
                let seed = seeds[mix.below(seeds.len())];
                mutated(&mut mix, seed)
            };
            if let Some(at) = reset_at(&text, now) {
                read += 1;
                assert!(
                    at > now && at <= now + 31 * DAY_SECONDS,
                    "{text:?} at now {now}: {at}"
                );
                assert_eq!(at % 60, 0, "{text:?}: not a whole minute");
            }
        }
        // Not vacuous: many of the mutated messages still read.
        assert!(read > 500, "only {read} of 4000 texts read a time");
    }
}
