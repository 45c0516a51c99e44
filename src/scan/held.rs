//! The events of the alerts a scan found, held from the match until the alert is written.
//!
//! An alert is built only when it is written (the rule snapshot, most of an alert document,
//! would otherwise be copied into each), so what waits is the event's compact JSON. Up to a
//! budget (`scan --memory`) it waits in memory; beyond it, in an unnamed temporary file that
//! the system deletes when the scan ends, however it ends. The output is the same either way.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

/// Where one event waits.
#[derive(Debug)]
pub enum Held {
    Memory(Box<[u8]>),
    Spilled { offset: u64, len: usize },
}

#[derive(Debug)]
struct Spill {
    file: Mutex<io::BufWriter<File>>,
    len: u64,
}

/// The events held for one scan.
#[derive(Debug)]
pub struct HeldEvents {
    budget: usize,
    in_memory: usize,
    spill: Option<Spill>,
    /// Bytes written to the temporary file, for the summary.
    pub spilled: u64,
}

impl HeldEvents {
    pub fn new(budget: usize) -> HeldEvents {
        HeldEvents {
            budget,
            in_memory: 0,
            spill: None,
            spilled: 0,
        }
    }

    /// Keep `bytes`, in memory while the budget allows.
    pub fn hold(&mut self, bytes: Vec<u8>) -> io::Result<Held> {
        if self.in_memory + bytes.len() <= self.budget {
            self.in_memory += bytes.len();
            return Ok(Held::Memory(bytes.into_boxed_slice()));
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert(Spill {
                file: Mutex::new(io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?)),
                len: 0,
            }),
        };
        let offset = spill.len;
        spill
            .file
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&bytes)?;
        spill.len += bytes.len() as u64;
        self.spilled += bytes.len() as u64;
        Ok(Held::Spilled {
            offset,
            len: bytes.len(),
        })
    }

    /// `held` is no longer wanted (a copy of the same event found earlier in the input
    /// replaced it): its memory goes back to the budget.
    pub fn release(&mut self, held: &Held) {
        if let Held::Memory(bytes) = held {
            self.in_memory -= bytes.len();
        }
    }

    /// The bytes of `held`.
    pub fn read<'a>(&self, held: &'a Held) -> io::Result<Cow<'a, [u8]>> {
        match held {
            Held::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
            Held::Spilled { offset, len } => {
                let spill = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| io::Error::other("an event spilled to no file"))?;
                let mut writer = spill.file.lock().unwrap_or_else(|e| e.into_inner());
                writer.flush()?;
                let file = writer.get_mut();
                file.seek(SeekFrom::Start(*offset))?;
                let mut bytes = vec![0; *len];
                let read = file.read_exact(&mut bytes);
                // Writes append: the file's position goes back to its end.
                file.seek(SeekFrom::End(0))?;
                read.map(|()| Cow::Owned(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_beyond_the_budget_wait_in_a_file_and_read_back_the_same() {
        let mut held = HeldEvents::new(10);
        let a = held.hold(b"0123456789".to_vec()).expect("held");
        let b = held.hold(b"abc".to_vec()).expect("held");
        let c = held.hold(b"defgh".to_vec()).expect("held");
        assert!(matches!(a, Held::Memory(_)));
        assert!(matches!(b, Held::Spilled { offset: 0, len: 3 }));
        assert!(matches!(c, Held::Spilled { offset: 3, len: 5 }));
        assert_eq!(held.spilled, 8);
        // Reads in any order, and writes after reads, keep their places.
        assert_eq!(&*held.read(&c).expect("read"), b"defgh");
        assert_eq!(&*held.read(&a).expect("read"), b"0123456789");
        let d = held.hold(b"ij".to_vec()).expect("held");
        assert_eq!(&*held.read(&b).expect("read"), b"abc");
        assert_eq!(&*held.read(&d).expect("read"), b"ij");
        // Released memory is budget again.
        held.release(&a);
        assert!(matches!(
            held.hold(b"klm".to_vec()).expect("held"),
            Held::Memory(_)
        ));
    }
}
