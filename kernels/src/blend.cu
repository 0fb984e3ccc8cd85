/* Mask and image blending kernels for overlays (placeholder until issue 5 lands). */
#include "vimk/vimk.h"
