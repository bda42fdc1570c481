//! Extracts the request facts of the upstream cURL samples (method, path with query, JSON
//! body, multipart field names) into `spec/samples.json`, as contract-test fixtures.
//! No shell text is kept.

use serde_json::{Value, json};

use crate::rules::derived_operation_id;

const SERVER: &str = "https://www.facturapi.io/v2";

/// Splits shell text into words: quotes, backslash escapes and line continuations.
/// Hand-written because the samples use only this small subset of POSIX shell and no
/// maintained crate returns command boundaries (`shlex` has no notion of newlines).
fn shell_commands(source: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = source.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(n) => {
                    in_word = true;
                    word.push(n);
                }
            },
            '#' if !in_word => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                end_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '\n' => {
                end_word(&mut word, &mut in_word, &mut words);
                // Three upstream samples forget the trailing backslash before an indented
                // `-H`/`-d` line; a line that starts with an option continues the command.
                let rest: String = chars.clone().take_while(|c| *c != '\n').collect();
                let continues =
                    rest.trim_start().starts_with('-') && rest.starts_with(char::is_whitespace);
                if !words.is_empty() && !continues {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut words),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut words);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// The request facts of one curl command.
pub(crate) fn parse_curl(words: &[String]) -> Result<Value, String> {
    let mut url = None;
    let mut method = None;
    let mut get = false;
    let mut data = Vec::new();
    let mut form = Vec::new();
    let mut args = words.iter().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-X" | "--request" => method = args.next().cloned(),
            "-G" | "--get" => get = true,
            "-d" | "--data" | "--data-raw" | "--data-urlencode" => {
                data.extend(args.next().cloned())
            }
            "-F" | "--form" => {
                let field = args.next().cloned().unwrap_or_default();
                form.push(field.split('=').next().unwrap_or_default().to_owned());
            }
            // Headers and the local output file are not request facts.
            "-H" | "--header" | "-o" | "--output" => {
                args.next();
            }
            other if other.starts_with("http") => url = Some(other.to_owned()),
            other => return Err(format!("unsupported curl argument {other:?}")),
        }
    }
    let url = url.ok_or("curl sample without URL")?;
    let mut path = url
        .strip_prefix(SERVER)
        .ok_or_else(|| format!("URL outside {SERVER}: {url}"))?
        .to_owned();
    let method = method.unwrap_or_else(|| {
        if !get && (!data.is_empty() || !form.is_empty()) {
            "POST"
        } else {
            "GET"
        }
        .to_owned()
    });
    let mut body = Value::Null;
    if get {
        if !data.is_empty() {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&data.join("&"));
        }
    } else if !data.is_empty() {
        let text = data.join("&");
        body = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: body is not JSON ({e})"))?;
    }
    let mut sample = json!({ "method": method.to_ascii_uppercase(), "path": path });
    if !body.is_null() {
        sample["body"] = body;
    }
    if !form.is_empty() {
        sample["form"] = json!(form);
    }
    Ok(sample)
}

/// One fixture per operation that has a cURL sample (its first curl command).
pub(crate) fn extract(upstream: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (path, item) in upstream
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (method, op) in item.as_object().into_iter().flatten() {
            let samples = op
                .get("x-codeSamples")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for sample in samples.filter(|s| s.get("label").and_then(Value::as_str) == Some("cURL"))
            {
                let source = sample
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // A sample may show several calls (e.g. "send to the stored e-mail", then "to
                // another address"): keep the first that carries a body or form, else the first.
                let curls: Vec<Vec<String>> = shell_commands(source)
                    .into_iter()
                    .filter(|w| w.first().is_some_and(|c| c == "curl"))
                    .collect();
                let carries = |w: &Vec<String>| {
                    !w.contains(&"-G".to_owned()) && w.iter().any(|a| a == "-d" || a == "-F")
                };
                let Some(curl) = curls.iter().find(|w| carries(w)).or(curls.first()) else {
                    return Err(format!(
                        "{method} {path}: cURL sample without a curl command"
                    ));
                };
                let operation_id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map_or_else(|| derived_operation_id(method, path), str::to_owned);
                let mut fixture = json!({ "operation_id": operation_id });
                if let (Value::Object(f), Value::Object(parsed)) = (&mut fixture, parse_curl(curl)?)
                {
                    f.extend(parsed);
                }
                out.push(fixture);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shell_commands(s).remove(0)
    }

    #[test]
    fn json_body_with_continuations() {
        let s = "curl https://www.facturapi.io/v2/customers \\\n  -H \"Authorization: Bearer k\" \\\n  -d '{\n \"a\": 1\n}'\n";
        let v = parse_curl(&words(s)).unwrap();
        assert_eq!(
            v,
            json!({"method": "POST", "path": "/customers", "body": {"a": 1}})
        );
    }

    #[test]
    fn get_with_data_becomes_query_and_comments_are_skipped() {
        let s = "# all of them\ncurl \"https://www.facturapi.io/v2/customers\" \\\n  -G \\\n  -d 'q=Dunder' \\\n  -d \"date[gt]=2021\"\n\n# another\ncurl x\n";
        let commands = shell_commands(s);
        assert_eq!(commands.len(), 2);
        let v = parse_curl(&commands[0]).unwrap();
        assert_eq!(
            v,
            json!({"method": "GET", "path": "/customers?q=Dunder&date[gt]=2021"})
        );
    }

    #[test]
    fn explicit_method_and_form_fields() {
        let s = "curl https://www.facturapi.io/v2/organizations/1/logo \\\n  -X PUT \\\n  -F 'file=@/path/logo.jpg'\n";
        let v = parse_curl(&words(s)).unwrap();
        assert_eq!(
            v,
            json!({"method": "PUT", "path": "/organizations/1/logo", "form": ["file"]})
        );
    }

    #[test]
    fn a_forgotten_backslash_does_not_split_the_command() {
        let s = "curl https://www.facturapi.io/v2/webhooks/1 \\\n  -X PUT\n  -H \"A: b\" \\\n  -d '{\"a\": 1}'\n";
        let commands = shell_commands(s);
        assert_eq!(commands.len(), 1);
        assert_eq!(
            parse_curl(&commands[0]).unwrap(),
            json!({"method": "PUT", "path": "/webhooks/1", "body": {"a": 1}})
        );
    }

    #[test]
    fn rejects_unknown_flags_and_foreign_urls() {
        assert!(parse_curl(&words("curl --insecure https://www.facturapi.io/v2/x")).is_err());
        assert!(parse_curl(&words("curl https://example.com/x")).is_err());
    }
}
