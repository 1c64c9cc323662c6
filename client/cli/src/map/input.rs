//! Where `warren map` takes its arguments (the words after `:::`, the lines of `--args FILE`,
//! or the lines of stdin), and how each argument fills the command's template.

use anyhow::Context;
use std::path::Path;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Arguments read ahead of submission, at most.
const READ_AHEAD: usize = 4096;

/// The command before `:::`, and the arguments after it (if there is a `:::`).
pub(crate) fn split_command(
    words: &[String],
) -> Result<(Vec<String>, Option<Vec<String>>), String> {
    let Some(at) = words.iter().position(|w| w == ":::") else {
        return Ok((words.to_vec(), None));
    };
    let (command, rest) = (words[..at].to_vec(), &words[at + 1..]);
    if command.is_empty() {
        return Err("give the command before `:::`, e.g. `warren map -- echo {} ::: a b`".into());
    }
    if rest.iter().any(|w| w == ":::" || w == "::::") {
        return Err(
            "only one `:::` list is supported: put every argument in one list, or in --args FILE"
                .into(),
        );
    }
    Ok((command, Some(rest.to_vec())))
}

/// Starts reading the arguments: from `listed`, else from `file` (`-` is stdin), else from
/// stdin. Each arrives on the receiver, read ahead a little; an unreadable line ends the
/// stream with an error. Also returns how many there are, when that is known beforehand.
pub(crate) async fn open(
    listed: Option<Vec<String>>,
    file: Option<&Path>,
) -> anyhow::Result<(mpsc::Receiver<Result<String, String>>, Option<u64>)> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    if let Some(listed) = listed {
        let total = listed.len() as u64;
        tokio::spawn(async move {
            for arg in listed {
                if tx.send(Ok(arg)).await.is_err() {
                    return;
                }
            }
        });
        return Ok((rx, Some(total)));
    }
    let (reader, name, total): (Box<dyn AsyncBufRead + Unpin + Send>, String, _) = match file {
        Some(path) if path.as_os_str() != "-" => {
            let open = || std::fs::File::open(path);
            let total = count_lines(
                open().with_context(|| format!("cannot open --args {}", path.display()))?,
            )
            .with_context(|| format!("cannot read --args {}", path.display()))?;
            let file = tokio::fs::File::from_std(open()?);
            (
                Box::new(BufReader::new(file)),
                format!("--args {}", path.display()),
                Some(total),
            )
        }
        _ => (
            Box::new(BufReader::new(tokio::io::stdin())),
            "stdin".into(),
            None,
        ),
    };
    tokio::spawn(read_lines(reader, name, tx));
    Ok((rx, total))
}

/// Lines in a file, counting a last line without its newline.
fn count_lines(file: std::fs::File) -> std::io::Result<u64> {
    use std::io::Read;
    let (mut count, mut last, mut buf) = (0u64, b'\n', vec![0u8; 64 << 10]);
    let mut file = file;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(count + u64::from(last != b'\n'))
}

/// Sends each line (without its line ending) until the end, or an error.
async fn read_lines(
    mut reader: Box<dyn AsyncBufRead + Unpin + Send>,
    name: String,
    tx: mpsc::Sender<Result<String, String>>,
) {
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let sent = match reader.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                match String::from_utf8(std::mem::take(&mut line)) {
                    Ok(arg) => tx.send(Ok(arg)).await,
                    Err(_) => {
                        let why = format!(
                            "line {number} of {name} is not UTF-8 text; warren passes arguments as text"
                        );
                        let _ = tx.send(Err(why)).await;
                        return;
                    }
                }
            }
            Err(err) => {
                let _ = tx.send(Err(format!("cannot read {name}: {err}"))).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The replacement strings GNU parallel users write, longest first where one starts another.
const SLOTS: [&str; 6] = ["{//}", "{/.}", "{/}", "{.}", "{#}", "{}"];

/// The command as given, with its replacement strings.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    words: Vec<String>,
    /// Whether any word has a replacement string; if none does, the argument is added last.
    has_slot: bool,
}

impl Template {
    /// The template of these words.
    pub(crate) fn new(words: Vec<String>) -> Self {
        let has_slot = words.iter().any(|w| SLOTS.iter().any(|s| w.contains(s)));
        Self { words, has_slot }
    }

    /// The command for one argument, the `job`th (from 1): `{}` is the argument, `{.}` it
    /// without its extension, `{/}` its basename, `{//}` its directory, `{/.}` its basename
    /// without extension, `{#}` the job number.
    pub(crate) fn fill(&self, arg: &str, job: u64) -> Vec<String> {
        let mut words: Vec<String> = self.words.iter().map(|w| fill_word(w, arg, job)).collect();
        if !self.has_slot {
            words.push(arg.to_owned());
        }
        words
    }
}

fn fill_word(word: &str, arg: &str, job: u64) -> String {
    let mut out = String::with_capacity(word.len() + arg.len());
    let mut rest = word;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match SLOTS.iter().find(|s| rest.starts_with(**s)) {
            Some(slot) => {
                out.push_str(&replacement(slot, arg, job));
                rest = &rest[slot.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn replacement(slot: &str, arg: &str, job: u64) -> String {
    let base = arg.rsplit_once('/').map_or(arg, |(_, base)| base);
    let no_ext = |text: &str| match text.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => stem.to_owned(),
        _ => text.to_owned(),
    };
    match slot {
        "{}" => arg.to_owned(),
        "{.}" => match arg.rsplit_once('.') {
            Some((stem, ext)) if !ext.contains('/') && !stem.is_empty() && !stem.ends_with('/') => {
                stem.to_owned()
            }
            _ => arg.to_owned(),
        },
        "{/}" => base.to_owned(),
        "{//}" => match arg.rsplit_once('/') {
            Some(("", _)) => "/".into(),
            Some((dir, _)) => dir.to_owned(),
            None => ".".into(),
        },
        "{/.}" => no_ext(base),
        "{#}" => job.to_string(),
        _ => slot.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn replacement_strings_are_filled_as_gnu_parallel_fills_them() {
        let template = Template::new(words("convert {} {//}/{/.}.png {.} {/} #{#} {x}"));
        assert_eq!(
            template.fill("in/a.b/photo.jpg", 7),
            words("convert in/a.b/photo.jpg in/a.b/photo.png in/a.b/photo photo.jpg #7 {x}")
        );
        assert_eq!(
            Template::new(words("{.} {//} {/.}")).fill("dir.d/file", 1),
            words("dir.d/file dir.d file")
        );
        assert_eq!(Template::new(words("{//}")).fill("/top", 1), words("/"));
        assert_eq!(
            Template::new(words("{.}")).fill(".hidden", 1),
            words(".hidden")
        );
    }

    #[test]
    fn without_a_replacement_string_the_argument_goes_last() {
        assert_eq!(
            Template::new(words("echo hi")).fill("x y", 1),
            vec!["echo", "hi", "x y"]
        );
    }

    #[test]
    fn the_argument_list_follows_the_first_triple_colon() {
        let (command, listed) = split_command(&words("echo {} ::: a b")).expect("split");
        assert_eq!((command, listed), (words("echo {}"), Some(words("a b"))));
        assert_eq!(split_command(&words("echo {}")).expect("split").1, None);
        assert!(split_command(&words("::: a")).is_err());
        assert!(split_command(&words("echo ::: a ::: b")).is_err());
    }
}
