//! A small XML well-formedness check for the tests of plots: one root
//! element, every tag closed in order, attributes quoted and unique,
//! entities known, no stray `<` or `&` in text. Not a parser for anything
//! else.

/// An element's name and its attributes.
pub type Element = (String, Vec<(String, String)>);

/// Checks that `doc` is well-formed and returns its elements in document
/// order.
pub fn check_xml(doc: &str) -> Result<Vec<Element>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    let mut roots = 0;
    let mut rest = doc.trim();
    let check_text = |t: &str| -> Result<(), String> {
        let mut r = t;
        while let Some(i) = r.find('&') {
            let after = r.get(i + 1..).unwrap_or("");
            let end = after
                .find(';')
                .ok_or_else(|| format!("unterminated entity in {t:?}"))?;
            let name = after.get(..end).unwrap_or("");
            if !["amp", "lt", "gt", "quot", "apos"].contains(&name) {
                return Err(format!("unknown entity &{name};"));
            }
            r = after.get(end + 1..).unwrap_or("");
        }
        Ok(())
    };
    while !rest.is_empty() {
        let lt = rest.find('<').ok_or("text after the root")?;
        let text = rest.get(..lt).unwrap_or("");
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_text(text)?;
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = rest.get(lt + 1..gt).ok_or("bad tag")?;
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
        rest = rest.get(gt + 1..).unwrap_or("");
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .ok_or_else(|| format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = body.get(..name_end).unwrap_or("").to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad element name in <{tag}>"));
        }
        // Attributes: name="value" pairs.
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut a = body.get(name_end..).unwrap_or("").trim();
        while !a.is_empty() {
            let eq = a
                .find('=')
                .ok_or_else(|| format!("attribute without value in <{tag}>"))?;
            let an = a.get(..eq).unwrap_or("").trim().to_string();
            let after = a.get(eq + 1..).unwrap_or("");
            let q = after.chars().next().ok_or("missing quote")?;
            if q != '"' && q != '\'' {
                return Err(format!("unquoted attribute {an} in <{tag}>"));
            }
            let close = after
                .get(1..)
                .and_then(|x| x.find(q))
                .ok_or("unterminated attribute")?;
            let val = after.get(1..close + 1).unwrap_or("").to_string();
            check_text(&val)?;
            if attrs.iter().any(|(n, _)| *n == an) {
                return Err(format!("duplicate attribute {an}"));
            }
            attrs.push((an, val));
            a = after.get(close + 2..).unwrap_or("").trim();
        }
        if stack.is_empty() {
            roots += 1;
        }
        elements.push((name.clone(), attrs));
        if !self_closing {
            stack.push(name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed <{}>", stack.join("> <")));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_catches_malformed_documents() {
        assert!(check_xml("<a><b/></a>").is_ok());
        assert!(check_xml("<a><b></a>").is_err());
        assert!(check_xml("<a></a><a></a>").is_err());
        assert!(check_xml("<a x=1/>").is_err());
        assert!(check_xml("<a x=\"1\" x=\"2\"/>").is_err());
        assert!(check_xml("<a>1 & 2</a>").is_err());
        assert!(check_xml("<a>1 &amp; 2</a>").is_ok());
        assert!(check_xml("<a>").is_err());
    }
}
