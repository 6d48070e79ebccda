//! Crisis support (PROTOCOL §8.1): recognising a message that says someone may be
//! thinking of ending their life or harming themselves, and the support resources
//! offered to them.
//!
//! A match never changes what happens to the message: it is stored and delivered like
//! any other. The author privately gets the resources for their region (then the
//! international ones); see `ws::requests`.
//!
//! The phrase lists (one file per locale) and the resource list ship in `data/care/`
//! and are embedded in the binary; an operator may point `care_phrases_dir` and
//! `care_resources_file` at their own.

use crate::protocol::Resource;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The built-in phrase lists, by locale.
const BUILTIN_PHRASES: &[(&str, &str)] = &[
    ("en", include_str!("../data/care/phrases/en.txt")),
    ("fr", include_str!("../data/care/phrases/fr.txt")),
    ("de", include_str!("../data/care/phrases/de.txt")),
    ("es", include_str!("../data/care/phrases/es.txt")),
];

/// The built-in resource list.
const BUILTIN_RESOURCES: &str = include_str!("../data/care/resources.toml");

/// Short forms written out before matching, in folded form (so `dont`, `don't` and
/// `doooont` are all `do not`). Both the phrases and the messages go through this.
const SHORT_FORMS: &[(&str, &str)] = &[
    ("im", "i am"),
    ("ive", "i have"),
    ("ill", "i will"),
    ("id", "i would"),
    ("dont", "do not"),
    ("cant", "cannot"),
    ("wont", "will not"),
    ("wana", "want to"),
    ("gona", "going to"),
    ("kms", "kill myself"),
    ("unalive", "kill"),
    ("tryna", "trying to"),
];

/// The crisis phrases of every locale, folded.
#[derive(Debug, Clone)]
pub struct Phrases {
    /// Each phrase as folded words; indexed by its first word.
    by_first: HashMap<String, Vec<Vec<String>>>,
}

impl Phrases {
    /// The built-in lists.
    pub fn builtin() -> Phrases {
        Phrases::from_lists(BUILTIN_PHRASES.iter().map(|(_, text)| *text))
    }

    /// Every `*.txt` file in `dir` (one locale each).
    pub fn from_dir(dir: &Path) -> Result<Phrases, String> {
        let entries = std::fs::read_dir(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let mut texts = Vec::new();
        for entry in entries {
            let path = entry.map_err(|err| format!("{}: {err}", dir.display()))?.path();
            if path.extension().is_some_and(|ext| ext == "txt") {
                texts.push(std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))?);
            }
        }
        let phrases = Phrases::from_lists(texts.iter().map(String::as_str));
        if phrases.by_first.is_empty() {
            return Err(format!("{} holds no phrases (*.txt, one phrase per line)", dir.display()));
        }
        Ok(phrases)
    }

    fn from_lists<'a>(texts: impl Iterator<Item = &'a str>) -> Phrases {
        let mut by_first: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for text in texts {
            for line in text.lines() {
                let phrase = line.split('#').next().unwrap_or("").trim();
                let words = fold(phrase);
                if let Some(first) = words.first() {
                    by_first.entry(first.clone()).or_default().push(words);
                }
            }
        }
        Phrases { by_first }
    }

    /// Whether `body` contains one of the phrases, word for word once folded.
    pub fn matches(&self, body: &str) -> bool {
        let words = fold(body);
        words.iter().enumerate().any(|(at, word)| {
            self.by_first.get(word).is_some_and(|phrases| phrases.iter().any(|phrase| words[at..].starts_with(phrase)))
        })
    }
}

/// Text as the words it is compared by: lower case, accents and punctuation dropped,
/// apostrophes inside words dropped (`can't` is `cant`), digits inside words read as
/// the letters they stand for (`su1c1de`), a letter repeated for emphasis counted once
/// (`diiie` is `die`, and, alike on both sides, `kill` is `kil`), and short forms
/// written out.
pub fn fold(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        let raw = std::mem::take(word);
        // Digits read as letters only inside a word that has letters (a phone number
        // stays a number).
        let read: String = if raw.chars().any(|c| c.is_alphabetic()) { raw.chars().map(leet).collect() } else { raw };
        let collapsed = collapse_word(&read);
        match SHORT_FORMS.iter().find(|(short, _)| *short == collapsed) {
            Some((_, long)) => words.extend(long.split(' ').map(collapse_word)),
            None => words.push(collapsed),
        }
    };
    for c in text.chars().flat_map(char::to_lowercase) {
        if let Some(base) = unaccent(c) {
            word.push_str(base);
        } else if c.is_alphanumeric() || matches!(c, '@' | '$') && !word.is_empty() {
            word.push(c);
        } else if matches!(c, '\'' | '’' | '`') {
            // Inside a word: dropped, so `don't` is `dont`.
        } else {
            flush(&mut word, &mut words);
        }
    }
    flush(&mut word, &mut words);
    words
}

/// A letter repeated in a row counted once (digits are left alone: `0800` stays).
fn collapse_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if !(c.is_alphabetic() && out.ends_with(c)) {
            out.push(c);
        }
    }
    out
}

/// A digit or sign written for a letter.
fn leet(c: char) -> char {
    match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' => 'a',
        '$' => 's',
        other => other,
    }
}

/// The letters of Latin scripts with marks, as the plain letters they are compared as.
fn unaccent(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'ç' | 'ć' | 'č' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'ñ' | 'ń' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'œ' => "oe",
        'æ' => "ae",
        _ => return None,
    })
}

/// The support resources, in the order of the file.
#[derive(Debug, Clone)]
pub struct Resources {
    all: Vec<Resource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceFile {
    resource: Vec<Resource>,
}

impl Resources {
    /// The built-in list.
    pub fn builtin() -> Resources {
        Resources::parse(BUILTIN_RESOURCES).expect("the built-in resource list parses")
    }

    /// A resource file (TOML, `[[resource]]` tables).
    pub fn from_file(path: &Path) -> Result<Resources, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        Resources::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    fn parse(text: &str) -> Result<Resources, String> {
        let file: ResourceFile = toml::from_str(text).map_err(|err| err.to_string())?;
        for resource in &file.resource {
            if !is_region(&resource.region) {
                return Err(format!(
                    "resource `{}`: region `{}` is not a two-letter country code or INT",
                    resource.name, resource.region
                ));
            }
            // The page makes a link of it: only a web address.
            if let Some(url) = &resource.url {
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(char::is_whitespace) {
                    return Err(format!("resource `{}`: url `{url}` is not a web address", resource.name));
                }
            }
            if resource.phone.is_none() && resource.text.is_none() && resource.url.is_none() && resource.note.is_none()
            {
                return Err(format!("resource `{}` says neither how to reach it nor what it is", resource.name));
            }
        }
        Ok(Resources { all: file.resource })
    }

    /// The resources for `region` (ISO 3166-1 alpha-2, any case), then the
    /// international ones; only the international ones without a region.
    pub fn for_region(&self, region: Option<&str>) -> Vec<Resource> {
        let region = region.map(str::to_ascii_uppercase);
        let local = self.all.iter().filter(|r| Some(&r.region) == region.as_ref() && r.region != "INT");
        let international = self.all.iter().filter(|r| r.region == "INT");
        local.chain(international).cloned().collect()
    }

    /// Every resource (for a client that lets the reader choose a region).
    pub fn all(&self) -> &[Resource] {
        &self.all
    }
}

/// A region as a client gave it: two letters (any case), upper-cased.
pub fn parse_region(region: &str) -> Result<String, crate::protocol::ApiError> {
    let region = region.trim().to_ascii_uppercase();
    if region.len() == 2 && is_region(&region) {
        Ok(region)
    } else {
        Err(crate::protocol::ApiError::new(
            crate::protocol::ErrorCode::Invalid,
            "A region is a two-letter country code, such as GB, IE, US or IN.",
        ))
    }
}

/// `INT` or two ASCII letters.
pub fn is_region(region: &str) -> bool {
    region == "INT" || (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crisis_phrases_are_recognised_however_they_are_written() {
        let phrases = Phrases::builtin();
        let said = [
            "I want to die",
            "i wanna DIEEEE",
            "I w4nt to d1e",
            "honestly i don't want to be here anymore",
            "I'm thinking about killing myself",
            "i feel so suicidal tonight",
            "kms",
            "I am going to end my life",
            "i want to... die",
            "Everyone would be better off without me.",
            "I can’t do this anymore",
            "su1c1dal again",
            "I took an overdose",
            "self-harm is back",
            "Ich will sterben",
            "je veux mourir.",
            "J'ai des idées suicidaires",
            "Quiero morir",
            "no quiero vivir así",
        ];
        for text in said {
            assert!(phrases.matches(text), "should match: {text:?} (folded {:?})", fold(text));
        }
    }

    #[test]
    fn ordinary_messages_with_near_words_raise_nothing() {
        let phrases = Phrases::builtin();
        let said = [
            "this diet is killing me",
            "I could die laughing",
            "I'm dying to see the film",
            "she has great skills",
            "I killed it at the gig",
            "Suicide Squad is on tonight",
            "I can't go on holiday this year",
            "the battery died",
            "I hurt my knee playing football",
            "kill the process and restart it",
            "my plant is dying, any tips?",
            "we talked about suicide prevention training",
            "call 116 123 if you need to",
            "die Katze schläft",
            "je veux manger",
            "I want to dine out",
            "end of my shift, good night",
        ];
        for text in said {
            assert!(!phrases.matches(text), "should not match: {text:?} (folded {:?})", fold(text));
        }
    }

    #[test]
    fn folding_keeps_numbers_and_writes_out_short_forms() {
        assert_eq!(fold("Call 0800-567-567!"), ["cal", "0800", "567", "567"]);
        assert_eq!(fold("I'm"), ["i", "am"]);
        assert_eq!(fold("Wannaaa"), ["want", "to"]);
        assert_eq!(fold("Café crème"), ["cafe", "creme"]);
    }

    #[test]
    fn every_region_the_issue_names_has_resources_and_each_says_how() {
        let resources = Resources::builtin();
        for region in ["GB", "IE", "US", "CA", "AU", "NZ", "IN", "DE", "FR", "ZA"] {
            let list = resources.for_region(Some(region));
            assert!(list.first().is_some_and(|r| r.region == region), "{region} has its own entries first");
            assert!(list.iter().any(|r| r.phone.is_some() || r.text.is_some()), "{region} has a line to call or text");
            assert!(list.iter().any(|r| r.region == "INT"), "{region} is followed by the international ones");
        }
        assert_eq!(resources.for_region(Some("gb")), resources.for_region(Some("GB")), "any case");
        let nowhere = resources.for_region(None);
        assert!(!nowhere.is_empty() && nowhere.iter().all(|r| r.region == "INT"));
        assert!(resources.for_region(Some("XX")).iter().all(|r| r.region == "INT"));
    }

    #[test]
    fn a_resource_file_that_is_wrong_is_refused_plainly() {
        let bad_region = "[[resource]]\nname = \"x\"\nregion = \"England\"\nphone = \"1\"\n";
        assert!(Resources::parse(bad_region).unwrap_err().contains("two-letter"));
        let unreachable = "[[resource]]\nname = \"x\"\nregion = \"GB\"\n";
        assert!(Resources::parse(unreachable).unwrap_err().contains("neither"));
        let script = "[[resource]]\nname = \"x\"\nregion = \"GB\"\nurl = \"javascript:alert(1)\"\n";
        assert!(Resources::parse(script).unwrap_err().contains("not a web address"));
    }
}
