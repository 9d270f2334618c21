"""Phase 0.2: readers of the public code datasets, the embedded default data, unified output."""
