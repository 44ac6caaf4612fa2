//! govdc-hub (being written).
