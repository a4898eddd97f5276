//! How many SMS a text costs. Providers bill per segment and the contract keeps codes to
//! one (≤ 160 GSM-7 characters), so the catalogs' SMS messages are checked with this.
//!
//! GSM 03.38: a text made only of the default alphabet goes as 7-bit septets, 160 in one
//! SMS; an extension-table character (`€`, `[`, `{`, …) is an escape plus a septet, so it
//! costs 2. Any other character makes the whole text UCS-2: 70 UTF-16 units in one SMS.
//! A longer text is split into parts that each lose room to the concatenation header
//! (153 septets / 67 units), and phones never split an escape pair or a surrogate pair
//! across two parts, so a part may hold one less.

/// Septets in one SMS / in each part of a concatenated one.
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
/// UTF-16 units in one SMS / in each part of a concatenated one.
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The default alphabet (GSM 03.38 table, in code order; `Ç` at 0x09 as in the Unicode
/// mapping: lower-case `ç` is not in it).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table (each sent as ESC + a septet): form feed, `^{}\[~]|€`.
const EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets `c` takes in GSM-7, or `None` when it has no GSM-7 encoding.
fn gsm7_cost(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The number of SMS segments `text` is sent as (an empty text still goes as one SMS).
pub fn gsm7_segments(text: &str) -> usize {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_cost).collect();
    match septets {
        Some(costs) => pack(&costs, GSM7_SINGLE, GSM7_PART),
        None => {
            let units: Vec<usize> = text.chars().map(char::len_utf16).collect();
            pack(&units, UCS2_SINGLE, UCS2_PART)
        }
    }
}

/// Segments for characters of the given costs: one if they all fit in `single`, else
/// parts of `part`, a character never split across two parts.
fn pack(costs: &[usize], single: usize, part: usize) -> usize {
    if costs.iter().sum::<usize>() <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for &cost in costs {
        if used + cost > part {
            parts += 1;
            used = 0;
        }
        used += cost;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_have_every_code_point() {
        // 128 codes, 0x1B being the escape itself; 10 extension characters.
        assert_eq!(BASIC.chars().count(), 127);
        assert_eq!(EXTENSION.chars().count(), 10);
        assert!(BASIC.chars().all(|c| !EXTENSION.contains(c)));
    }

    #[test]
    fn plain_ascii_fills_160_then_153_per_part() {
        assert_eq!(gsm7_segments(""), 1);
        assert_eq!(gsm7_segments("Hello"), 1);
        assert_eq!(gsm7_segments(&"a".repeat(160)), 1);
        assert_eq!(gsm7_segments(&"a".repeat(161)), 2);
        assert_eq!(gsm7_segments(&"a".repeat(306)), 2);
        assert_eq!(gsm7_segments(&"a".repeat(307)), 3);
        assert_eq!(gsm7_segments(&"a".repeat(459)), 3);
        assert_eq!(gsm7_segments(&"a".repeat(460)), 4);
    }

    #[test]
    fn french_accents_of_the_default_alphabet_stay_gsm7() {
        for c in ['é', 'è', 'à', 'ù', 'É', 'Ç', 'ì', 'ò'] {
            assert_eq!(gsm7_cost(c), Some(1), "{c}");
        }
        let text = "Votre code de confirmation Vigile : 123456 (valable 10 minutes). Où ? Là.";
        assert_eq!(gsm7_segments(text), 1);
        // 160 accented GSM-7 characters are still one SMS.
        assert_eq!(gsm7_segments(&"é".repeat(160)), 1);
        assert_eq!(gsm7_segments(&"é".repeat(161)), 2);
    }

    #[test]
    fn other_accents_switch_the_whole_text_to_ucs2() {
        for c in ['ê', 'â', 'ô', 'î', 'ç', 'ë', 'ï', 'û', 'œ'] {
            assert_eq!(gsm7_cost(c), None, "{c}");
        }
        assert_eq!(gsm7_segments(&format!("ê{}", "a".repeat(69))), 1);
        assert_eq!(gsm7_segments(&format!("ê{}", "a".repeat(70))), 2);
        assert_eq!(gsm7_segments(&format!("ç{}", "a".repeat(133))), 2);
        assert_eq!(gsm7_segments(&format!("ç{}", "a".repeat(134))), 3);
        assert_eq!(gsm7_segments("Code reçu : 123456"), 1);
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        for c in ['€', '[', ']', '{', '}', '\\', '^', '~', '|', '\u{c}'] {
            assert_eq!(gsm7_cost(c), Some(2), "{c}");
        }
        assert_eq!(gsm7_segments(&"€".repeat(80)), 1);
        assert_eq!(gsm7_segments(&"€".repeat(81)), 2);
        assert_eq!(gsm7_segments(&format!("{}€", "a".repeat(158))), 1);
        assert_eq!(gsm7_segments(&format!("{}€", "a".repeat(159))), 2);
    }

    #[test]
    fn an_escape_pair_is_never_split_across_parts() {
        // 152 septets then `€`: 154 in a 153-septet part, so `€` opens the second part;
        // 152 + 2 + 152 = 306 septets would fit two parts only if the pair were split.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(text.chars().filter_map(gsm7_cost).sum::<usize>(), 306);
        assert_eq!(gsm7_segments(&text), 3);
    }

    #[test]
    fn ucs2_counts_utf16_units() {
        // An emoji is a surrogate pair: 2 units.
        assert_eq!(gsm7_segments(&"😀".repeat(35)), 1);
        assert_eq!(gsm7_segments(&"😀".repeat(36)), 2);
        assert_eq!(gsm7_segments(&"ê".repeat(70)), 1);
        assert_eq!(gsm7_segments(&"ê".repeat(71)), 2);
        assert_eq!(gsm7_segments(&"ê".repeat(134)), 2);
        assert_eq!(gsm7_segments(&"ê".repeat(135)), 3);
    }

    #[test]
    fn the_contract_s_english_code_message_is_one_segment() {
        let text = "Your Vigile confirmation code: 123456 (valid 10 minutes).";
        assert_eq!(gsm7_segments(text), 1);
    }
}
