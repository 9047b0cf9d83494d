//! EPUB 2 and 3: the package document named by `META-INF/container.xml`, its spine in reading
//! order, each XHTML part read by the HTML extractor. A book whose content is encrypted (DRM)
//! is refused as encrypted; font obfuscation, which only scrambles fonts, is not.

use std::collections::HashMap;

use skein_text::chunk::Block;

use super::ooxml::{Archive, resolve};
use super::xml::{Event, Reader};
use super::{ExtractError, Format, Limits};

/// The blocks of a book, chapter after chapter.
pub(crate) fn extract(bytes: &[u8], limits: Limits) -> Result<Vec<Block>, ExtractError> {
    let mut archive = Archive::open(bytes, Format::Epub, limits)?;
    if let Some(encryption) = archive.text("META-INF/encryption.xml")?
        && encrypts_content(&encryption)
    {
        return Err(ExtractError::Encrypted {
            format: Format::Epub.as_str(),
        });
    }
    let container = archive.required("META-INF/container.xml")?;
    let package_path = Reader::new(&container)
        .find(|e| {
            matches!(
                e,
                Event::Start {
                    name: "rootfile",
                    ..
                }
            )
        })
        .and_then(|e| e.attr("full-path").map(str::to_owned))
        .ok_or_else(|| ExtractError::corrupt(Format::Epub, "container.xml names no package"))?;
    let package = archive.required(&package_path)?;
    let dir = package_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let mut manifest: HashMap<String, (String, String)> = HashMap::new();
    let mut spine = Vec::new();
    for event in Reader::new(&package) {
        match &event {
            Event::Start { name: "item", .. } => {
                if let (Some(id), Some(href)) = (event.attr("id"), event.attr("href")) {
                    let media = event.attr("media-type").unwrap_or("").to_owned();
                    manifest.insert(id.to_owned(), (resolve(dir, href), media));
                }
            }
            Event::Start {
                name: "itemref", ..
            } => {
                if let Some(idref) = event.attr("idref") {
                    spine.push(idref.to_owned());
                }
            }
            _ => {}
        }
    }
    let mut blocks = Vec::new();
    for idref in spine {
        let Some((path, media)) = manifest.get(&idref) else {
            continue;
        };
        if !(media.contains("html") || media.is_empty()) {
            continue;
        }
        if let Some(xhtml) = archive.text(path)? {
            blocks.extend(super::html::extract(&xhtml));
        }
    }
    Ok(blocks)
}

/// Whether `encryption.xml` encrypts anything beyond fonts (IDPF and Adobe font obfuscation).
fn encrypts_content(xml: &str) -> bool {
    Reader::new(xml).any(|e| {
        matches!(
            &e,
            Event::Start {
                name: "EncryptionMethod",
                ..
            }
        ) && e.attr("Algorithm").is_some_and(|a| {
            !(a.contains("idpf.org/2008/embedding") || a.contains("ns.adobe.com/pdf/enc#RC"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_obfuscation_is_not_drm() {
        assert!(!encrypts_content(
            r#"<encryption><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/></enc:EncryptedData></encryption>"#
        ));
        assert!(encrypts_content(
            r#"<encryption><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></enc:EncryptedData></encryption>"#
        ));
    }
}
