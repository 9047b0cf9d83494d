//! PDFs built for tests and benchmarks: text pages (Helvetica, WinAnsi encoding, so Latin
//! text only), pages that show a JPEG (a scan, with or without an invisible text layer as OCR
//! software leaves), and unreferenced padding that makes a file as large as a test needs.

/// Builds a PDF page by page.
pub struct PdfBuilder {
    /// Object bodies; object `n` is at index `n - 1`. 1 is the catalog, 2 the page tree, 3
    /// the font.
    objects: Vec<Vec<u8>>,
    /// The page objects' numbers.
    pages: Vec<usize>,
}

impl Default for PdfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PdfBuilder {
    /// An empty document.
    pub fn new() -> Self {
        PdfBuilder {
            objects: vec![
                Vec::new(),
                Vec::new(),
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                    .to_vec(),
            ],
            pages: Vec::new(),
        }
    }

    /// The number of pages added so far.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// A US Letter page with `lines` of 10-point text from the top.
    pub fn text_page(&mut self, lines: &[&str]) -> &mut Self {
        let content = text_ops(lines, 0);
        self.page(content, None)
    }

    /// A page covered by a JPEG (a scan; its size and colour space read from the JPEG), with
    /// `lines` drawn over it as invisible text (render mode 3, as OCR software leaves a text
    /// layer) when given. A JPEG whose frame header cannot be read is drawn as a 1×1 gray one.
    pub fn image_page(&mut self, jpeg: &[u8], lines: &[&str]) -> &mut Self {
        let (width, height, components) = jpeg_frame(jpeg).unwrap_or((1, 1, 1));
        let space = match components {
            3 => "DeviceRGB",
            4 => "DeviceCMYK",
            _ => "DeviceGray",
        };
        let mut image = format!(
            "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} \
             /ColorSpace /{space} /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
            jpeg.len()
        )
        .into_bytes();
        image.extend_from_slice(jpeg);
        image.extend_from_slice(b"\nendstream");
        self.objects.push(image);
        let image = self.objects.len();
        let mut content = String::from("q 612 0 0 792 0 0 cm /Im1 Do Q\n");
        if !lines.is_empty() {
            content.push_str(&text_ops(lines, 3));
        }
        self.page(content, Some(image))
    }

    /// A stream of `bytes` bytes that no page uses: it only makes the file larger.
    pub fn padding(&mut self, bytes: usize) -> &mut Self {
        let mut stream = format!("<< /Length {bytes} >>\nstream\n").into_bytes();
        stream.extend((0..bytes).map(|i| (i % 251) as u8));
        stream.extend_from_slice(b"\nendstream");
        self.objects.push(stream);
        self
    }

    fn page(&mut self, content: String, image: Option<usize>) -> &mut Self {
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"\nendstream");
        self.objects.push(stream);
        let content = self.objects.len();
        let xobject = image
            .map(|i| format!(" /XObject << /Im1 {i} 0 R >>"))
            .unwrap_or_default();
        self.objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >>{xobject} >> /Contents {content} 0 R >>"
            )
            .into_bytes(),
        );
        self.pages.push(self.objects.len());
        self
    }

    /// The file's bytes, with its cross-reference table.
    pub fn finish(mut self) -> Vec<u8> {
        self.objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>".to_vec();
        let kids: Vec<String> = self.pages.iter().map(|n| format!("{n} 0 R")).collect();
        self.objects[1] = format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        )
        .into_bytes();
        let size: usize = self.objects.iter().map(|o| o.len() + 32).sum();
        let mut out = Vec::with_capacity(size + 20 * self.objects.len() + 256);
        out.extend_from_slice(b"%PDF-1.4\n");
        let mut offsets = Vec::with_capacity(self.objects.len());
        for (i, body) in self.objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", self.objects.len() + 1).as_bytes(),
        );
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                self.objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }
}

/// Content-stream operators that draw `lines` top-down in render `mode` (0 fills, 3 is
/// invisible).
fn text_ops(lines: &[&str], mode: u8) -> String {
    let mut ops = format!("BT {mode} Tr /F1 10 Tf 50 760 Td 18 TL\n");
    for line in lines {
        let escaped = line
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        ops.push_str(&format!("({escaped}) Tj T*\n"));
    }
    ops.push_str("ET");
    ops
}

/// A JPEG's width, height and colour components, from its start-of-frame marker.
fn jpeg_frame(jpeg: &[u8]) -> Option<(u16, u16, u8)> {
    let mut at = 2;
    while at + 9 < jpeg.len() {
        if jpeg[at] != 0xFF {
            return None;
        }
        let marker = jpeg[at + 1];
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        // SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC), which are not frames.
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let height = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
            let width = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
            return Some((width, height, jpeg[at + 9]));
        }
        at += 2 + length;
    }
    None
}
