//! `LocalModel` in a build without the `local-llm` feature: nothing can be
//! loaded, so no value of it exists, and `load` says how to get one.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::{GenerateRequest, Generated, LoadOptions, LocalError};

#[derive(Debug)]
pub struct LocalModel {
    never: std::convert::Infallible,
}

impl LocalModel {
    pub fn load(_path: impl AsRef<Path>, _opts: LoadOptions) -> Result<Self, LocalError> {
        Err(LocalError::FeatureDisabled)
    }

    pub fn path(&self) -> &Path {
        match self.never {}
    }

    pub fn n_ctx(&self) -> u32 {
        match self.never {}
    }

    pub fn embedding_dim(&self) -> usize {
        match self.never {}
    }

    pub fn has_chat_template(&self) -> bool {
        match self.never {}
    }

    pub fn tokenize(&self, _text: &str) -> Vec<i32> {
        match self.never {}
    }

    pub fn detokenize(&self, _tokens: &[i32]) -> String {
        match self.never {}
    }

    pub fn embed(&self, _texts: &[&str]) -> Result<Vec<Vec<f32>>, LocalError> {
        match self.never {}
    }

    pub fn generate(
        &self,
        _req: &GenerateRequest,
        _on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        _cancel: &AtomicBool,
    ) -> Result<Generated, LocalError> {
        match self.never {}
    }

    pub(crate) fn embed_until(
        &self,
        _texts: &[&str],
        _interrupted: &dyn Fn() -> Option<LocalError>,
    ) -> Result<Vec<Vec<f32>>, LocalError> {
        match self.never {}
    }

    pub(crate) fn generate_until(
        &self,
        _req: &GenerateRequest,
        _on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        _interrupted: &dyn Fn() -> Option<LocalError>,
    ) -> Result<Generated, LocalError> {
        match self.never {}
    }
}
