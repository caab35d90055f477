//! QR codes of client configs, as a PNG image and as terminal text, for phone apps to scan.

use qrcode::{Color, EcLevel, QrCode};

use crate::{ClientConfig, Error};

/// Pixels per QR module in the PNG.
const SCALE: usize = 8;
/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

fn code(config: &ClientConfig) -> Result<QrCode, Error> {
    QrCode::with_error_correction_level(config.render().as_bytes(), EcLevel::L)
        .map_err(|e| Error::InvalidArgument(format!("config does not fit a QR code: {e}")))
}

/// The modules with the quiet zone, row by row; `true` is dark.
fn modules(code: &QrCode) -> (usize, Vec<bool>) {
    let width = code.width();
    let full = width + 2 * QUIET_ZONE;
    let colors = code.to_colors();
    let mut out = vec![false; full * full];
    for (i, color) in colors.iter().enumerate() {
        let (y, x) = (i / width + QUIET_ZONE, i % width + QUIET_ZONE);
        out[y * full + x] = *color == Color::Dark;
    }
    (full, out)
}

impl ClientConfig {
    /// The config as a QR code in a grayscale PNG (8 pixels per module, quiet zone included).
    pub fn qr_png(&self) -> Result<Vec<u8>, Error> {
        let (full, dark) = modules(&code(self)?);
        let side = full * SCALE;
        let mut pixels = vec![0u8; side * side];
        for (y, row) in pixels.chunks_mut(side).enumerate() {
            for (x, px) in row.iter_mut().enumerate() {
                *px = if dark[(y / SCALE) * full + x / SCALE] { 0 } else { 255 };
            }
        }
        let side = u32::try_from(side)
            .map_err(|_| Error::InvalidArgument("QR image too large".to_owned()))?;
        let png_error =
            |e: png::EncodingError| Error::InvalidArgument(format!("PNG encoding: {e}"));
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
        Ok(out)
    }

    /// The config as a QR code in terminal text: two modules per character with Unicode half
    /// blocks, light modules drawn, for the usual dark terminal background.
    pub fn qr_text(&self) -> Result<String, Error> {
        let (full, dark) = modules(&code(self)?);
        let light = |y: usize, x: usize| y < full && !dark[y * full + x];
        let mut out = String::with_capacity((full + 1) * full.div_ceil(2) * 3);
        for y in (0..full).step_by(2) {
            for x in 0..full {
                out.push(match (light(y, x), light(y + 1, x)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        Ok(out)
    }
}
