//! [`Errors`]: collects every misuse found in one macro input, so the user sees
//! them all at once, each at its own span.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// A growing set of spanned errors.
#[derive(Default)]
pub(crate) struct Errors {
    collected: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Adds `error`.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.collected {
            Some(collected) => collected.combine(error),
            None => self.collected = Some(error),
        }
    }

    /// How many errors were added so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Adds an error with `message`, spanning `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Adds `result`'s error, if any, and returns its value.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// The collected errors as one, or `None` when nothing went wrong.
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.collected
    }

    /// The collected errors as `compile_error!` invocations, or `None` when
    /// nothing went wrong.
    pub(crate) fn into_compile_errors(self) -> Option<TokenStream> {
        self.into_error().map(|error| error.to_compile_error())
    }
}
