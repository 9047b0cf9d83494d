//! Previews of Excel workbooks through the real server, on SQLite and PostgreSQL: a workbook
//! built here (shared strings, inline strings, numbers, a formula's cached value, two sheets,
//! Chinese text) is uploaded as any file is and its preview shows every sheet's cells.

use std::io::Write;

use reqwest::StatusCode;
use skein_testkit::{Persona, TestApp, on_both_backends};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A two-sheet workbook as Excel writes one: the content types first, then the package
/// relationships, the workbook, its relationships, the shared strings and the sheets.
fn workbook() -> Vec<u8> {
    let members = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Supplies" sheetId="1" r:id="rId1"/><sheet name="备注" sheetId="2" r:id="rId2"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
        ),
        (
            "xl/sharedStrings.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="5" uniqueCount="5"><si><t>Item</t></si><si><t>Qty</t></si><si><t>Price</t></si><si><t>Stapler</t></si><si><r><t>订书</t></r><r><t>机</t></r></si></sst>"#,
        ),
        (
            "xl/worksheets/sheet1.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row><row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2"><v>3</v></c><c r="C2"><v>12.5</v></c></row><row r="3"><c r="A3" t="s"><v>4</v></c><c r="B3"><v>10</v></c><c r="C3"><v>7.5</v></c></row><row r="4"><c r="A4" t="inlineStr"><is><t>Total</t></is></c><c r="C4"><f>SUM(C2:C3)</f><v>20</v></c></row></sheetData></worksheet>"#,
        ),
        (
            "xl/worksheets/sheet2.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="2"><c r="B2" t="inlineStr"><is><t>Order before Friday 周五前下单</t></is></c></row></sheetData></worksheet>"#,
        ),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in members {
        zip.start_file(name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Uploads `content` in one multipart request (no type given: the server sniffs it).
async fn upload(app: &TestApp, who: &Persona, name: &str, content: &[u8]) -> String {
    let boundary = "skein-preview-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nknowledge\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&who.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn an_xlsx_workbook_previews_every_sheets_cells(backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.register("alice").await;
        let id = upload(&app, &alice, "supplies 用品.xlsx", &workbook()).await;
        let file = app.get(&format!("/api/v1/files/{id}"), Some(&alice.access)).await;
        assert_eq!(file.json["content_type"], XLSX, "sniffed from the zip's entries: {}", file.text);

        let r = app.get(&format!("/api/v1/files/{id}/preview"), Some(&alice.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["kind"], "document");
        assert_eq!(r.json["content_type"], XLSX);
        assert_eq!(r.json["truncated"], false);
        // Each sheet in workbook order: its name, then its rows (shared strings, runs joined,
        // numbers as written, a formula by its cached value; the empty row and column of the
        // second sheet dropped).
        assert_eq!(
            r.json["text"].as_str().unwrap(),
            "Supplies\n\nItem | Qty | Price\nStapler | 3 | 12.5\n订书机 | 10 | 7.5\nTotal |  | 20\n\n备注\n\nOrder before Friday 周五前下单",
            "{}",
            r.text
        );

        // Someone else's workbook has no preview for them.
        let bob = app.register("bob").await;
        let r = app.get(&format!("/api/v1/files/{id}/preview"), Some(&bob.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
}
