//! Invoices for paid orders: requested with the buyer's details (bad input refused), one order
//! on at most one invoice even when two requests race, rejected with a reason (the orders are
//! freed), issued with a number and the PDF uploaded through the File service, which only the
//! invoice's owner downloads.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Persona, TestApp, on_both_backends};

use crate::billing::payments::{
    EPAY_KEY, epay_notification, epay_notify, order, pay_app, payment_config,
};

const BOUNDARY: &str = "skein-invoice-test-boundary";

async fn paid_order(app: &TestApp, who: &Persona, amount: i64, money: &str) -> String {
    let created = order(app, who, json!({"amount": amount, "provider": "epay"})).await;
    let id = created["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        epay_notify(app, &epay_notification(&id, money, EPAY_KEY))
            .await
            .text,
        "success"
    );
    id
}

fn details(order_ids: &[&str]) -> Value {
    json!({"order_ids": order_ids, "kind": "normal", "title": "上海某某科技有限公司", "tax_id": "91310000MA1FL0XX1X", "email": "finance@example.com"})
}

/// A one-page PDF.
fn pdf() -> Vec<u8> {
    let stream = "BT /F1 24 Tf 72 700 Td (Invoice) Tj ET";
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
         3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >> endobj\n\
         4 0 obj << /Length {} >> stream\n{stream}\nendstream endobj\n\
         5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n\
         trailer << /Root 1 0 R >>\n%%EOF\n",
        stream.len()
    )
    .into_bytes()
}

async fn upload(app: &TestApp, who: &Persona, name: &str, content: &[u8]) -> String {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nchat\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&who.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "upload {name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn invoices_cover_each_paid_order_at_most_once(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        let first = paid_order(&app, &ada, 1000, "10.00").await;
        let second = paid_order(&app, &ada, 5000, "50.00").await;
        let unpaid = order(&app, &ada, json!({"amount": 2000, "provider": "epay"})).await["order"]["id"].as_str().unwrap().to_string();
        let bobs = paid_order(&app, &bob, 1000, "10.00").await;

        // Bad input: the field is named, nothing is recorded.
        for (body, field) in [
            (json!({"order_ids": [], "kind": "normal", "title": "X", "email": "a@example.com"}), "order_ids"),
            (details(&[unpaid.as_str()]), "order_ids"),
            (details(&[bobs.as_str()]), "order_ids"),
            (json!({"order_ids": [first], "kind": "normal", "title": " ", "email": "a@example.com"}), "title"),
            (json!({"order_ids": [first], "kind": "normal", "title": "X", "tax_id": "123", "email": "a@example.com"}), "tax_id"),
            (json!({"order_ids": [first], "kind": "special", "title": "X", "tax_id": "91310000MA1FL0XX1X", "email": "a@example.com"}), "address"),
            (json!({"order_ids": [first], "kind": "normal", "title": "X", "email": "not an address"}), "email"),
        ] {
            let r = app.post("/api/v1/billing/invoices", Some(&ada.access), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let r = app.post("/api/v1/billing/invoices", Some(&ada.access), json!({"order_ids": [first], "kind": "receipt", "title": "X", "email": "a@example.com"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

        // Two requests for the same order at once: one invoice.
        let both = futures::future::join(
            app.post("/api/v1/billing/invoices", Some(&ada.access), details(&[first.as_str(), second.as_str()])),
            app.post("/api/v1/billing/invoices", Some(&ada.access), details(&[first.as_str()])),
        )
        .await;
        let statuses = [both.0.status, both.1.status];
        assert!(statuses.contains(&StatusCode::CREATED) && statuses.contains(&StatusCode::CONFLICT), "{} / {}", both.0.text, both.1.text);
        let (won, lost) = if both.0.status == StatusCode::CREATED { (&both.0, &both.1) } else { (&both.1, &both.0) };
        assert_eq!(lost.json["error"]["code"], "order_already_invoiced", "{}", lost.text);
        let invoice = won.json["id"].as_str().unwrap().to_string();
        assert_eq!(won.json["status"], "requested");
        assert_eq!(won.json["currency"], "CNY");
        let covered = won.json["order_ids"].as_array().unwrap().len();
        assert_eq!(won.json["amount_minor"].as_i64().unwrap(), if covered == 2 { 6000 } else { 1000 });

        // Rejected with a reason: the orders are free again.
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/reject"), Some(&root.access), json!({"reason": ""})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/reject"), Some(&ada.access), json!({"reason": "no"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/reject"), Some(&root.access), json!({"reason": "税号与抬头不符"})).await;
        assert_eq!((r.status, r.json["status"].as_str(), r.json["reason"].as_str()), (StatusCode::OK, Some("rejected"), Some("税号与抬头不符")), "{}", r.text);
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/issue"), Some(&root.access), json!({"number": "1"})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invoice_decided")), "a decided invoice stays decided: {}", r.text);
        let again = app.post("/api/v1/billing/invoices", Some(&ada.access), details(&[first.as_str(), second.as_str()])).await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
        assert_eq!(again.json["amount_minor"], 6000);
        let invoice = again.json["id"].as_str().unwrap().to_string();

        // Issued with a number and the admin's PDF; the PDF must be a PDF the admin owns.
        let text_file = upload(&app, &root, "notes.txt", b"plain words, not a pdf").await;
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/issue"), Some(&root.access), json!({"number": "044031900111", "file_id": text_file})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("file_id")), "{}", r.text);
        let bobs_pdf = upload(&app, &bob, "bob.pdf", &pdf()).await;
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/issue"), Some(&root.access), json!({"number": "044031900111", "file_id": bobs_pdf})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "another user's file: {}", r.text);
        let pdf_id = upload(&app, &root, "invoice.pdf", &pdf()).await;
        let r = app.post(&format!("/api/v1/admin/billing/invoices/{invoice}/issue"), Some(&root.access), json!({"number": "044031900111", "file_id": pdf_id})).await;
        assert_eq!((r.status, r.json["status"].as_str(), r.json["has_pdf"].as_bool()), (StatusCode::OK, Some("issued"), Some(true)), "{}", r.text);

        // Only the owner downloads it; the orders stay taken.
        let got = app.get(&format!("/api/v1/billing/invoices/{invoice}/pdf"), Some(&ada.access)).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert!(got.text.starts_with("%PDF-1.4"));
        assert_eq!(app.get(&format!("/api/v1/billing/invoices/{invoice}/pdf"), Some(&bob.access)).await.status, StatusCode::NOT_FOUND);
        let r = app.post("/api/v1/billing/invoices", Some(&ada.access), details(&[second.as_str()])).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        let mine = app.get("/api/v1/billing/invoices", Some(&ada.access)).await;
        assert_eq!(mine.json["total"], 2, "{}", mine.text);
        assert_eq!(app.get("/api/v1/billing/invoices", Some(&bob.access)).await.json["total"], 0);
        let requested = app.get("/api/v1/admin/billing/invoices?status=issued", Some(&root.access)).await;
        assert_eq!(requested.json["total"], 1, "{}", requested.text);
    }
}
