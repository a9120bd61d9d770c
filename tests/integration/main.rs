mod postgres;
mod support;
