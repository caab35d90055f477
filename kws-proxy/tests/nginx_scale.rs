//! nginx_scale tests.
