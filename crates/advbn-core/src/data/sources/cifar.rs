//! CIFAR-10 binary batches (`data_batch_1.bin` ...): records of 1 label byte and 3072 pixel
//! bytes (32x32 R plane, G plane, B plane). All files are read and checked up front.

use std::path::{Path, PathBuf};

use super::{read_file, Source, DATASET_FILE_BYTES};
use crate::data::Image;
use crate::error::{Error, Result};

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;
const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub struct Cifar10 {
    records: Vec<u8>,
    /// (file, index of its first record), in order.
    files: Vec<(PathBuf, usize)>,
}

impl Cifar10 {
    /// Concatenates the records of `paths`, in the order given.
    pub fn from_batches(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::invalid_option("paths", "[]", "needs at least one CIFAR-10 batch file"));
        }
        let mut records = Vec::new();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = read_file(path, DATASET_FILE_BYTES)?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                return Err(Error::invalid_data(format!(
                    "{}: {} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each)",
                    path.display(),
                    bytes.len()
                )));
            }
            if let Some(r) = bytes.chunks_exact(RECORD).position(|rec| rec[0] as usize >= CLASSES.len()) {
                return Err(Error::invalid_data(format!("{}: record {r} has label {}, not in 0..10 (a CIFAR-100 file?)", path.display(), bytes[r * RECORD])));
            }
            files.push((path.clone(), records.len() / RECORD));
            records.extend_from_slice(&bytes);
        }
        Ok(Self { records, files })
    }

    /// The file holding sample `index` and the record number inside it.
    fn locate(&self, index: usize) -> (&Path, usize) {
        let f = self.files.partition_point(|(_, start)| *start <= index) - 1;
        (&self.files[f].0, index - self.files[f].1)
    }
}

impl Source for Cifar10 {
    fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    fn num_classes(&self) -> usize {
        CLASSES.len()
    }

    fn class_names(&self) -> Vec<String> {
        CLASSES.iter().map(|c| c.to_string()).collect()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        if index >= self.len() {
            return Err(Error::invalid_data(format!("CIFAR-10 sample {index} is out of range ({} records)", self.len())));
        }
        let rec = &self.records[index * RECORD..(index + 1) * RECORD];
        let plane = SIDE * SIDE;
        let mut hwc = vec![0u8; 3 * plane];
        for p in 0..plane {
            for c in 0..3 {
                hwc[p * 3 + c] = rec[1 + c * plane + p];
            }
        }
        Ok((Image::from_u8(SIDE, SIDE, 3, &hwc)?, rec[0] as u32))
    }

    fn label(&self, index: usize) -> Result<u32> {
        if index >= self.len() {
            return Err(Error::invalid_data(format!("CIFAR-10 sample {index} is out of range ({} records)", self.len())));
        }
        Ok(self.records[index * RECORD] as u32)
    }

    fn describe(&self, index: usize) -> String {
        if index >= self.len() {
            return format!("CIFAR-10 sample {index} (out of range)");
        }
        let (path, record) = self.locate(index);
        format!("{} record {record}", path.display())
    }
}
