//! Sources in GB 18030 (which covers GBK and GB2312), decoded to UTF-8 as they are read, with
//! `encoding_rs` (the WHATWG decoder Firefox uses): every character, the four-byte ones of the
//! supplementary planes (𠮷) and of the extensions (䶮) too. A byte sequence that is not
//! GB 18030 refuses the source instead of becoming a replacement character: a value changed
//! on the way in is a value published wrong.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult, GB18030};

/// Bytes read from the source, and decoded, per step.
const BUFFER: usize = 64 * 1024;

/// Where a source stops being GB 18030, carried inside the `io::Error` the reader returns.
#[derive(Debug, thiserror::Error)]
#[error("byte {offset} is not part of a GB 18030 character")]
pub struct NotGb18030 {
    /// The offset of the first byte of the malformed sequence, from the start of the source.
    pub offset: u64,
}

/// A reader of UTF-8 over a GB 18030 source.
pub struct Gb18030Reader<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    /// Decoded bytes not yet handed out: `output[given..]`.
    output: Vec<u8>,
    given: usize,
    /// The source's bytes consumed by the decoder so far.
    consumed: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> Gb18030Reader<R> {
    /// Decodes `inner`. A GB 18030 byte-order mark (`84 31 95 33`) becomes U+FEFF, which the
    /// CSV reader drops from the header; UTF-8 and UTF-16 marks are not looked for, because
    /// the source is declared GB 18030.
    pub fn new(inner: R) -> Self {
        Gb18030Reader {
            inner,
            decoder: GB18030.new_decoder_without_bom_handling(),
            input: Vec::with_capacity(BUFFER),
            output: Vec::with_capacity(BUFFER * 2),
            given: 0,
            consumed: 0,
            eof: false,
            done: false,
        }
    }
}

impl<R: Read> Read for Gb18030Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.given < self.output.len() {
                let n = buf.len().min(self.output.len() - self.given);
                buf[..n].copy_from_slice(&self.output[self.given..self.given + n]);
                self.given += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if self.input.is_empty() && !self.eof {
                self.input.resize(BUFFER, 0);
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        self.input.clear();
                        return Err(e);
                    }
                };
                self.input.truncate(n);
                self.eof = n == 0;
            }
            self.output.clear();
            self.given = 0;
            // Room for everything the input can become.
            let room = self
                .decoder
                .max_utf8_buffer_length_without_replacement(self.input.len())
                .unwrap_or(BUFFER * 4);
            self.output.resize(room, 0);
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input,
                &mut self.output,
                self.eof,
            );
            self.output.truncate(written);
            match result {
                DecoderResult::Malformed(bad, unread) => {
                    // The malformed sequence ends `unread` bytes before `read`.
                    let offset = self.consumed + read as u64 - u64::from(unread) - u64::from(bad);
                    self.done = true;
                    self.output.clear();
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        NotGb18030 { offset },
                    ));
                }
                DecoderResult::InputEmpty => {
                    self.consumed += read as u64;
                    self.input.clear();
                    if self.eof {
                        self.done = true;
                    }
                }
                DecoderResult::OutputFull => {
                    self.consumed += read as u64;
                    self.input.drain(..read);
                }
            }
        }
    }
}

/// Whether everything `source` holds is GB 18030 (for the message of a source that is not
/// UTF-8: it most likely is GB 18030, and then says which field to set).
pub fn is_gb18030(source: impl Read) -> bool {
    io::copy(&mut Gb18030Reader::new(source), &mut io::sink()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> io::Result<String> {
        let mut out = String::new();
        Gb18030Reader::new(bytes).read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_every_plane_and_refuses_what_is_not_gb18030() {
        // Python's own codec: "姓名,𠮷䶮\n".encode("gb18030").
        let bytes = [
            0xd0, 0xd5, 0xc3, 0xfb, 0x2c, 0x95, 0x34, 0xb2, 0x35, 0xfe, 0x9f, 0x0a,
        ];
        assert_eq!(decode(&bytes).expect("GB 18030"), "姓名,𠮷䶮\n");
        // Split at every byte, as a slow source would hand it out.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = usize::from(!self.0.is_empty() && !buf.is_empty());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = String::new();
        Gb18030Reader::new(Trickle(&bytes))
            .read_to_string(&mut out)
            .expect("GB 18030 byte by byte");
        assert_eq!(out, "姓名,𠮷䶮\n");

        let error = decode(b"ab\x81\x20cd").expect_err("0x81 0x20 is no character");
        let inner = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<NotGb18030>())
            .expect("the offset");
        assert_eq!(inner.offset, 2);
        assert!(!is_gb18030(&b"ab\x81"[..]), "a character cut short");
        assert!(is_gb18030("plain ASCII".as_bytes()));
    }
}
