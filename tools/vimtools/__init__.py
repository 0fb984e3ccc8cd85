"""Python helpers shared by gst-vim's tools: model-file I/O and Vim configs."""
