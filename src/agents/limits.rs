//! TEMPORARY stand-in for the reset-time parser being written on branch
//! wt-limitparse (replaced by it at merge): reads only a bare epoch.
pub fn reset_at(text: &str, now: i64) -> Option<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 10)
        .filter_map(|w| w.parse::<i64>().ok())
        .find(|&t| t > now)
        .map(|t| (t + 59) / 60 * 60)
}
