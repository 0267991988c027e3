//! Sources made of other sources without copying a file: a selection of samples (`Subset`, which
//! the seeded subsets and class-stratified splits of `data::selection` produce) and several
//! sources one after another (`Concat`). Both share the sources they view.

use std::sync::Arc;

use super::Source;
use crate::data::Image;
use crate::error::{Error, Result};

/// The samples `indices` of `inner`, in that order (an index may repeat).
pub struct Subset {
    inner: Arc<dyn Source>,
    indices: Vec<u32>,
}

impl Subset {
    /// Refuses an index past the end of `inner`, naming it.
    pub fn new(inner: Arc<dyn Source>, indices: Vec<u32>) -> Result<Self> {
        if let Some((at, &i)) = indices.iter().enumerate().find(|(_, &i)| i as usize >= inner.len()) {
            return Err(Error::invalid_data(format!("indices[{at}] = {i} is out of range for a dataset of {} samples", inner.len())));
        }
        Ok(Self { inner, indices })
    }

    fn inner_index(&self, index: usize) -> Result<usize> {
        self.indices
            .get(index)
            .map(|&i| i as usize)
            .ok_or_else(|| Error::invalid_data(format!("sample index {index} is out of range (subset of {} samples)", self.indices.len())))
    }
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }

    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        self.inner.load(self.inner_index(index)?)
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.inner.label(self.inner_index(index)?)
    }

    fn describe(&self, index: usize) -> String {
        self.inner_index(index).map_or_else(|_| format!("sample {index}"), |i| self.inner.describe(i))
    }
}

/// The samples of every part, part after part. Labels keep their meaning, so the parts must
/// name the same classes.
pub struct Concat {
    parts: Vec<Arc<dyn Source>>,
    /// Index of each part's first sample, then the total.
    starts: Vec<usize>,
}

impl Concat {
    /// Refuses no parts, and parts whose class names differ (label 3 would mean two classes).
    pub fn new(parts: Vec<Arc<dyn Source>>) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid_data("concat needs at least one dataset"));
        };
        let (names, classes) = (first.class_names(), first.num_classes());
        for (at, part) in parts.iter().enumerate().skip(1) {
            if part.num_classes() != classes || part.class_names() != names {
                return Err(Error::invalid_data(format!(
                    "dataset {at} has the classes {:?} ({} classes) but dataset 0 has {names:?} ({classes}): a label would mean different classes",
                    part.class_names(),
                    part.num_classes()
                )));
            }
        }
        let mut starts = Vec::with_capacity(parts.len() + 1);
        let mut total = 0usize;
        for part in &parts {
            starts.push(total);
            total += part.len();
        }
        if total > u32::MAX as usize {
            return Err(Error::invalid_data(format!("{total} samples in all, more than 2^32")));
        }
        starts.push(total);
        Ok(Self { parts, starts })
    }

    /// (part, index inside it) of sample `index`.
    fn locate(&self, index: usize) -> Result<(&Arc<dyn Source>, usize)> {
        if index >= self.len() {
            return Err(Error::invalid_data(format!("sample index {index} is out of range ({} samples)", self.len())));
        }
        // The last part starting at or before `index` (parts may be empty).
        let part = self.starts.partition_point(|&s| s <= index) - 1;
        Ok((&self.parts[part], index - self.starts[part]))
    }
}

impl Source for Concat {
    fn len(&self) -> usize {
        self.starts[self.parts.len()]
    }

    fn num_classes(&self) -> usize {
        self.parts[0].num_classes()
    }

    fn class_names(&self) -> Vec<String> {
        self.parts[0].class_names()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        let (part, i) = self.locate(index)?;
        part.load(i)
    }

    fn label(&self, index: usize) -> Result<u32> {
        let (part, i) = self.locate(index)?;
        part.label(i)
    }

    fn describe(&self, index: usize) -> String {
        self.locate(index).map_or_else(|_| format!("sample {index}"), |(part, i)| part.describe(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` 1x1 gray samples whose pixel is `base + index`, labelled index % 2.
    struct Counting {
        len: usize,
        base: f32,
        names: Vec<String>,
    }

    impl Source for Counting {
        fn len(&self) -> usize {
            self.len
        }
        fn num_classes(&self) -> usize {
            self.names.len()
        }
        fn class_names(&self) -> Vec<String> {
            self.names.clone()
        }
        fn load(&self, index: usize) -> Result<(Image, u32)> {
            assert!(index < self.len, "index {index} past {}", self.len);
            Ok((Image::new(1, 1, 1, vec![self.base + index as f32])?, index as u32 % 2))
        }
        fn describe(&self, index: usize) -> String {
            format!("{}#{index}", self.base)
        }
    }

    fn counting(len: usize, base: f32) -> Arc<dyn Source> {
        Arc::new(Counting { len, base, names: vec!["a".into(), "b".into()] })
    }

    fn pixel(source: &dyn Source, index: usize) -> f32 {
        source.load(index).unwrap().0.data[0]
    }

    #[test]
    fn concat_walks_parts_in_order_and_skips_empty_ones() {
        let all = Concat::new(vec![counting(0, 0.0), counting(3, 10.0), counting(0, 0.0), counting(2, 20.0)]).unwrap();
        assert_eq!(all.len(), 5);
        let pixels: Vec<f32> = (0..5).map(|i| pixel(&all, i)).collect();
        assert_eq!(pixels, [10.0, 11.0, 12.0, 20.0, 21.0]);
        assert_eq!((0..5).map(|i| all.label(i).unwrap()).collect::<Vec<_>>(), [0, 1, 0, 0, 1]);
        assert_eq!(all.describe(4), "20#1");
        assert!(all.load(5).unwrap_err().to_string().contains("out of range (5 samples)"));
    }

    #[test]
    fn concat_refuses_nothing_and_different_classes() {
        assert!(Concat::new(Vec::new()).is_err());
        let other: Arc<dyn Source> = Arc::new(Counting { len: 1, base: 0.0, names: vec!["a".into(), "c".into()] });
        let err = Concat::new(vec![counting(1, 0.0), other]).err().unwrap().to_string();
        assert!(err.contains("dataset 1 has the classes [\"a\", \"c\"]"), "{err}");
    }

    #[test]
    fn subset_maps_indices_and_refuses_out_of_range() {
        let picked = Subset::new(counting(4, 0.0), vec![3, 3, 0]).unwrap();
        assert_eq!((0..3).map(|i| pixel(&picked, i)).collect::<Vec<_>>(), [3.0, 3.0, 0.0]);
        assert_eq!(picked.label(0).unwrap(), 1);
        assert!(picked.load(3).is_err());
        let err = Subset::new(counting(4, 0.0), vec![1, 4]).err().unwrap().to_string();
        assert!(err.contains("indices[1] = 4 is out of range for a dataset of 4 samples"), "{err}");
    }
}
